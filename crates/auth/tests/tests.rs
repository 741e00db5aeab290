//! Integration tests of `loupe-auth`: the shared `SessionCache` behaviour suite against both implementations
//! (Redis on a real `redis-server` started per test), Redis outage and restart recovery, and an end-to-end
//! bootstrap-admin login flow. The only test binary of this crate.

mod flow;
mod redis_outage;
mod session_cache_suite;
