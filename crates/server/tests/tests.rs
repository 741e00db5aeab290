//! End-to-end tests: the real `loupe` and `px` binaries, real HTTP servers and clients.

mod amqp_capture;
mod capture;
mod common;
mod conn_stats;
mod cron;
mod dns;
mod dns_capture;
mod e2e;
mod hardening_auth;
mod hardening_query;
mod http2_capture;
mod mqtt_capture;
mod mysql_capture;
mod nats_capture;
mod pgsql_capture;
mod pixie_api;
mod px_cloud;
mod redaction;
mod redis_capture;
mod split;
mod tls;
mod tls_capture;
mod two_orgs;
mod ui;
mod viziers;
mod vzconn_tls;
