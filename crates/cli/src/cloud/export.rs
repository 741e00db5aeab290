//! `px export …`: the org's default OpenTelemetry endpoint over `/api/v1/export-target`, used by a
//! `px.export(df, px.otel.Data(...))` that gives no `endpoint=`: `get`, `set`, `delete`.
//!
//! Owns these verbs' flags and columns. Header values are credentials: `--header-file` reads one from a file
//! (kept out of the shell's history and `ps`), and the cloud only ever answers them as `<redacted>`. Must not
//! decide anything the cloud decides (URL forms, header names and sizes are checked there).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::render::{self, Column, text};
use super::{Cloud, logged_in};
use crate::config::AuthStore;
use crate::output::Format;

const EXPORT_TARGET: &str = "/api/v1/export-target";

/// `px export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Show the org's default export endpoint (header values redacted).
    Get {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Set the org's default export endpoint (org admins): where a script's `px.export` sends when its
    /// `px.otel.Data` has no `endpoint=`. Every vizier of the org receives it within seconds.
    Set(SetArgs),
    /// Delete the org's default export endpoint (org admins); `px.export` then needs `endpoint=`.
    Delete,
}

/// `px export set` flags.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The OTLP endpoint: `host:port` (OTLP/gRPC, TLS unless --insecure), `grpc://` or `grpcs://host:port`, or an
    /// `http://` or `https://` URL (OTLP/HTTP, posted to <url>/v1/metrics and /v1/traces).
    #[arg(long)]
    url: String,
    /// A header sent with every request, as NAME=VALUE (lower-case name); repeat for several. Prefer
    /// --header-file for credentials.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// A header whose value is the content of FILE (trailing newline dropped), as NAME=FILE.
    #[arg(long = "header-file", value_name = "NAME=FILE")]
    header_files: Vec<String>,
    /// Plain text: no TLS (gRPC), or an http:// URL is used as given.
    #[arg(long)]
    insecure: bool,
    /// Time allowed per request (1s to 60s; default 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Output format of the endpoint as saved.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

const COLUMNS: &[Column] =
    &[text("url", "url"), text("headers", "headers"), text("insecure", "insecure"), text("timeout_s", "timeout s")];

/// The endpoint as shown in a table or CSV: headers as `name=<redacted>` joined by spaces, the default timeout
/// spelled out.
fn shown(mut e: Value, format: Format) -> Value {
    if format == Format::Json {
        return e;
    }
    let headers = match e["headers"].as_object() {
        Some(h) => h.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>(),
        None => Vec::new(),
    };
    e["headers"] = json!(headers.join(" "));
    if e["timeout_s"].as_u64().unwrap_or(0) == 0 {
        e["timeout_s"] = json!(5);
    }
    e
}

fn split(pair: &str, what: &str) -> Result<(String, String)> {
    match pair.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => bail!("{what} takes NAME=VALUE, got {pair:?}"),
    }
}

fn body(args: &SetArgs) -> Result<Value> {
    let mut headers = Map::new();
    for pair in &args.headers {
        let (name, value) = split(pair, "--header")?;
        headers.insert(name, json!(value));
    }
    for pair in &args.header_files {
        let (name, path) = split(pair, "--header-file")?;
        let value = std::fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
        headers.insert(name, json!(value.trim_end_matches(['\n', '\r'])));
    }
    let timeout_s = match args.timeout {
        None => 0,
        Some(d) if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 60 => {
            bail!("--timeout must be whole seconds from 1s to 60s")
        }
        Some(d) => d.as_secs(),
    };
    Ok(json!({ "url": args.url, "headers": headers, "insecure": args.insecure, "timeout_s": timeout_s }))
}

pub(super) fn run(store: &AuthStore, cloud: &Cloud, cmd: ExportCommand, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    match cmd {
        ExportCommand::Get { output } => {
            let target = client.get(EXPORT_TARGET)?;
            render::record(&shown(target, output), COLUMNS, output, out)?;
        }
        ExportCommand::Set(args) => {
            let saved = client.put(EXPORT_TARGET, &body(&args)?)?;
            render::record(&shown(saved, args.output), COLUMNS, args.output, out)?;
        }
        ExportCommand::Delete => {
            client.delete(EXPORT_TARGET)?;
            writeln!(out, "Deleted the org's export target.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(headers: &[&str]) -> SetArgs {
        SetArgs {
            url: "c:4317".into(),
            headers: headers.iter().map(|s| (*s).to_owned()).collect(),
            header_files: vec![],
            insecure: true,
            timeout: Some(std::time::Duration::from_secs(7)),
            output: Format::Table,
        }
    }

    #[test]
    fn headers_are_name_value_pairs_and_show_redacted() {
        let b = body(&args(&["api-key=a=b"])).expect("body");
        assert_eq!(b, json!({ "url": "c:4317", "headers": { "api-key": "a=b" }, "insecure": true, "timeout_s": 7 }));
        assert!(body(&args(&["novalue"])).is_err());
        let answer = json!({ "url": "c:4317", "headers": { "api-key": "<redacted>" }, "insecure": false,
            "timeout_s": 0 });
        let row = shown(answer.clone(), Format::Table);
        assert_eq!((&row["headers"], &row["timeout_s"]), (&json!("api-key=<redacted>"), &json!(5)));
        assert_eq!(shown(answer.clone(), Format::Json), answer);
    }
}
