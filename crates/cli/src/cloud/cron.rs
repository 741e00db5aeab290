//! `px cron …`: the org's cron scripts (scripts its viziers run on a schedule) over `/api/v1/cron-scripts`:
//! `list`, `create`, `delete`, `results`, `enable`, `disable`.
//!
//! Owns these verbs' flags and columns: `--every` is a duration (`10s`, `5m`, whole seconds), `--cron` a
//! five-field expression in UTC. Must not decide anything the cloud decides (names, schedules and viziers are
//! checked there).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{self, Client};
use super::render::{self, Column, text, time};
use super::{Cloud, logged_in};
use crate::config::AuthStore;
use crate::output::Format;

const CRON_SCRIPTS: &str = "/api/v1/cron-scripts";

/// `px cron …`.
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// List the org's cron scripts: name, schedule, viziers, enabled.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Create a cron script from a PxL file; it runs on its viziers from its next scheduled time on.
    Create(CreateArgs),
    /// Delete a cron script (its viziers stop running it) and its results.
    Delete {
        /// The cron script's name.
        name: String,
    },
    /// Show the last results of a cron script (the cloud keeps the newest 100 by default), oldest first.
    Results {
        /// The cron script's name.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Start running a cron script again.
    Enable {
        /// The cron script's name.
        name: String,
    },
    /// Stop running a cron script, keeping it and its results.
    Disable {
        /// The cron script's name.
        name: String,
    },
}

/// `px cron create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Its name: 1 to 64 of [a-z0-9_-], unique in the org.
    #[arg(long)]
    name: String,
    /// Run every this long (10s, 5m, 1h; whole seconds), at multiples of it since the Unix epoch.
    #[arg(long, value_parser = humantime::parse_duration, required_unless_present = "cron", conflicts_with = "cron")]
    every: Option<std::time::Duration>,
    /// Or on this five-field cron expression, in UTC ("*/5 * * * *").
    #[arg(long)]
    cron: Option<String>,
    /// Run only on this vizier (name or id); repeat for several. Default: every vizier of the org.
    #[arg(long = "vizier", value_name = "VIZIER")]
    viziers: Vec<String>,
    /// The PxL script to run.
    #[arg(short, long, value_name = "FILE")]
    file: std::path::PathBuf,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

const CRON_COLUMNS: &[Column] = &[
    text("name", "name"),
    text("schedule", "schedule"),
    text("viziers", "viziers"),
    text("enabled", "enabled"),
    time("updated_at", "updated"),
];

const RESULT_COLUMNS: &[Column] = &[
    time("run_at", "run at"),
    text("vizier_id", "vizier"),
    text("duration_ms", "duration ms"),
    text("records", "records"),
    text("bytes", "bytes"),
    text("error", "error"),
];

/// A cron script as shown in a table or CSV: its schedule in one column, its viziers joined (`all` when none).
fn shown(mut c: Value, format: Format) -> Value {
    if format == Format::Json {
        return c;
    }
    let schedule = match (c["frequency_s"].as_i64(), c["cron"].as_str()) {
        (Some(secs), _) => format!("every {secs}s"),
        (None, Some(expr)) => expr.to_owned(),
        _ => String::new(),
    };
    let viziers = match c["viziers"].as_array() {
        Some(v) if !v.is_empty() => v.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => "all".to_owned(),
    };
    c["schedule"] = json!(schedule);
    c["viziers"] = json!(viziers);
    c
}

pub(super) fn run(store: &AuthStore, cloud: &Cloud, cmd: CronCommand, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    match cmd {
        CronCommand::List { output } => {
            let Value::Array(rows) = client.get(CRON_SCRIPTS)? else { bail!("the cloud's list is not a list") };
            let rows: Vec<Value> = rows.into_iter().map(|c| shown(c, output)).collect();
            render::list(&rows, CRON_COLUMNS, output, out)?;
        }
        CronCommand::Create(args) => {
            let script = std::fs::read_to_string(&args.file)
                .with_context(|| format!("failed to read {}", args.file.display()))?;
            let frequency_s = match args.every {
                Some(d) if d.subsec_nanos() != 0 || d.as_secs() == 0 => {
                    bail!("--every must be a whole number of seconds, at least 1s")
                }
                Some(d) => Some(d.as_secs()),
                None => None,
            };
            let body = json!({
                "name": args.name,
                "script": script,
                "frequency_s": frequency_s,
                "cron": args.cron,
                "viziers": args.viziers,
                "enabled": !args.disabled,
            });
            let created = client.post(CRON_SCRIPTS, Some(&body))?;
            let shown = shown(created, Format::Table);
            writeln!(
                out,
                "Created cron script {} ({}, on {}).",
                shown["name"].as_str().unwrap_or_default(),
                shown["schedule"].as_str().unwrap_or_default(),
                shown["viziers"].as_str().unwrap_or_default()
            )?;
        }
        CronCommand::Delete { name } => {
            client.delete(&path(&name))?;
            writeln!(out, "Deleted cron script {name}.")?;
        }
        CronCommand::Results { name, output } => {
            let Value::Array(rows) = client.get(&format!("{}/results", path(&name)))? else {
                bail!("the cloud's list of results is not a list")
            };
            render::list(&rows, RESULT_COLUMNS, output, out)?;
        }
        CronCommand::Enable { name } => set_enabled(&client, &name, true, out)?,
        CronCommand::Disable { name } => set_enabled(&client, &name, false, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn path(name: &str) -> String {
    format!("{CRON_SCRIPTS}/{}", client::segment(name))
}

fn set_enabled(client: &Client, name: &str, enabled: bool, out: &mut dyn Write) -> Result<()> {
    client.patch(&path(name), &json!({ "enabled": enabled }))?;
    writeln!(out, "{} cron script {name}.", if enabled { "Enabled" } else { "Disabled" })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_one_schedule_and_the_viziers() {
        let every = json!({ "name": "a", "frequency_s": 10, "cron": null, "viziers": [] });
        let shown_every = shown(every.clone(), Format::Table);
        assert_eq!((&shown_every["schedule"], &shown_every["viziers"]), (&json!("every 10s"), &json!("all")));
        let by_cron = json!({ "name": "b", "frequency_s": null, "cron": "*/5 * * * *", "viziers": ["x", "y"] });
        let shown_cron = shown(by_cron, Format::Csv);
        assert_eq!((&shown_cron["schedule"], &shown_cron["viziers"]), (&json!("*/5 * * * *"), &json!("x y")));
        assert_eq!(shown(every.clone(), Format::Json), every, "JSON is printed as the cloud sent it");
    }
}
