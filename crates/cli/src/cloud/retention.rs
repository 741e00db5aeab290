//! `px retention …`: how long, and how much of, each table the org's viziers keep in history, over
//! `/api/v1/retention`: `get`, `set`, `delete`.
//!
//! Owns these verbs' flags and columns. Must not decide anything the cloud decides (known tables and bounds
//! are checked there).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::segment;
use super::render::{self, Column, text};
use super::{Cloud, logged_in};
use crate::config::AuthStore;
use crate::output::Format;

const RETENTION: &str = "/api/v1/retention";
/// What a vizier keeps of a table with no entry unless its flags say otherwise (`--history-max-age`,
/// `--history-max-mb`); also what `set` fills in for a limit it is not given on a table without an entry.
const DEFAULT_MAX_AGE_S: u64 = 7 * 86_400;
const DEFAULT_MAX_MB: u64 = 1024;

/// `px retention …`.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// List the tables with a history retention of the org's own (the others keep each vizier's defaults,
    /// `--history-max-age` and `--history-max-mb`, 7 days and 1024 MiB unless set).
    Get {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Set how long and how much of TABLE the org's viziers keep in history (org admins). Every vizier of the
    /// org receives it within seconds; its next sweep deletes what is past either limit.
    Set(SetArgs),
    /// Put TABLE back on each vizier's defaults (org admins).
    Delete {
        /// The table, as `px.GetTables()` names it.
        table: String,
        /// Output format of the policy left.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

/// `px retention set` flags.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The table, as `px.GetTables()` names it (`http_events`, `process_stats`, ...).
    table: String,
    /// Hours of history older than this are deleted (1m to 400d, such as `36h` or `30d`); unchanged if the table
    /// has an entry, else 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Past this many MiB per vizier, the oldest history is deleted (1 to 16777216); unchanged if the table has
    /// an entry, else 1024.
    #[arg(long)]
    max_mb: Option<u64>,
    /// Output format of the whole policy as saved.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

const COLUMNS: &[Column] = &[text("table", "table"), text("max_age", "max age"), text("max_mb", "max MiB")];

/// The policy's entries as shown: the age spelled as a duration and the bytes as MiB (JSON keeps the API's
/// fields and adds those two).
fn shown(policy: &Value) -> Vec<Value> {
    let entries = policy.as_array().cloned().unwrap_or_default();
    entries
        .into_iter()
        .map(|mut e| {
            let age = e["max_age_s"].as_u64().unwrap_or(0);
            e["max_age"] = json!(humantime::format_duration(std::time::Duration::from_secs(age)).to_string());
            e["max_mb"] = json!(e["max_bytes"].as_u64().unwrap_or(0) >> 20);
            e
        })
        .collect()
}

fn limits(args: &SetArgs, current: Option<&Value>) -> Result<Value> {
    let max_age_s = match args.max_age {
        Some(d) if d.subsec_nanos() != 0 => bail!("--max-age must be whole seconds"),
        Some(d) => d.as_secs(),
        None => current.and_then(|c| c["max_age_s"].as_u64()).unwrap_or(DEFAULT_MAX_AGE_S),
    };
    let max_bytes = match args.max_mb {
        Some(mb) => match mb.checked_mul(1 << 20) {
            Some(b) => b,
            None => bail!("--max-mb {mb} is too large"),
        },
        None => current.and_then(|c| c["max_bytes"].as_u64()).unwrap_or(DEFAULT_MAX_MB << 20),
    };
    Ok(json!({ "max_age_s": max_age_s, "max_bytes": max_bytes }))
}

pub(super) fn run(store: &AuthStore, cloud: &Cloud, cmd: RetentionCommand, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    match cmd {
        RetentionCommand::Get { output } => {
            render::list(&shown(&client.get(RETENTION)?), COLUMNS, output, out)?;
        }
        RetentionCommand::Set(args) => {
            let current = if args.max_age.is_none() || args.max_mb.is_none() {
                let policy = client.get(RETENTION)?;
                policy.as_array().and_then(|p| p.iter().find(|e| e["table"] == json!(args.table)).cloned())
            } else {
                None
            };
            let body = limits(&args, current.as_ref())?;
            let saved = client.put(&format!("{RETENTION}/{}", segment(&args.table)), &body)?;
            render::list(&shown(&saved), COLUMNS, args.output, out)?;
        }
        RetentionCommand::Delete { table, output } => {
            let left = client.delete(&format!("{RETENTION}/{}", segment(&table)))?;
            render::list(&shown(&left), COLUMNS, output, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max_age: Option<u64>, max_mb: Option<u64>) -> SetArgs {
        SetArgs {
            table: "http_events".into(),
            max_age: max_age.map(std::time::Duration::from_secs),
            max_mb,
            output: Format::Table,
        }
    }

    #[test]
    fn a_limit_not_given_keeps_the_tables_or_takes_the_default() {
        assert_eq!(
            limits(&args(Some(3600), Some(5)), None).expect("ok"),
            json!({"max_age_s": 3600, "max_bytes": 5 << 20})
        );
        assert_eq!(
            limits(&args(None, Some(5)), None).expect("ok"),
            json!({"max_age_s": DEFAULT_MAX_AGE_S, "max_bytes": 5 << 20})
        );
        let current = json!({"table": "http_events", "max_age_s": 60, "max_bytes": 9 << 20});
        assert_eq!(
            limits(&args(Some(120), None), Some(&current)).expect("ok"),
            json!({"max_age_s": 120, "max_bytes": 9 << 20})
        );
        assert!(limits(&args(None, Some(u64::MAX)), None).is_err());
    }

    #[test]
    fn entries_show_a_duration_and_mebibytes() {
        let policy = json!([{"table": "http_events", "max_age_s": 129600, "max_bytes": 2u64 << 30}]);
        let rows = shown(&policy);
        assert_eq!(rows[0]["max_age"], "1day 12h");
        assert_eq!(rows[0]["max_mb"], 2048);
        assert_eq!(rows[0]["max_age_s"], 129600, "JSON keeps the API's fields");
    }
}
