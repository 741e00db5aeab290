//! The bus's one test binary: the same behaviour suite on both backends (the in-process bus and a real
//! `nats-server` with JetStream started by the test), and what only NATS can show (a server restart).

mod nats_restart;
mod suite;
