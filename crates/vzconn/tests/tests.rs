//! VZConn end to end: a real tonic server on loopback, the real connector, a real SQLite metastore in a temp
//! dir, and both buses (in process, and NATS on a real `nats-server`), with the real query service behind the
//! connector.

mod bridge;
mod common;
mod connector;
mod cron;
mod registration;
