//! End-to-end tests: the real `loupe` and `px` binaries, real HTTP servers and clients.

mod capture;
mod common;
mod cron;
mod dns;
mod dns_capture;
mod e2e;
mod hardening_auth;
mod hardening_query;
mod http2_capture;
mod mysql_capture;
mod pgsql_capture;
mod pixie_api;
mod px_cloud;
mod redaction;
mod redis_capture;
mod split;
mod tls;
mod two_orgs;
mod ui;
mod viziers;
mod vzconn_tls;
