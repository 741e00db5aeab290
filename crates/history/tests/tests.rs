//! loupe-history's tests against real backends: the local directory, a real S3 API (`moto`'s server mode on
//! loopback), and DuckDB reading a written partition as it is. The Python side comes from
//! `scripts/history-venv.sh` (`LOUPE_HISTORY_VENV`, default `target/history-venv`); without it these tests skip
//! with a message, except under `CI=true`, where they fail.

mod common;
mod duckdb;
mod local;
mod s3;
