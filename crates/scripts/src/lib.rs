//! The `px/*` scripts shipped inside the binaries, with their manifest descriptions.
//!
//! Owns the list of bundled scripts (sources under `crates/scripts/px/`, embedded with
//! `include_str!`) and reading the `short:`/`long:` lines of each `manifest.yaml`. A crate of its
//! own, with no dependencies, so that `px` can run a script by name without linking the compiler.
//! Must not compile or run them: `loupe-pxl`'s tests compile every one, callers run them.

use std::sync::OnceLock;

/// One bundled script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundledScript {
    /// Script id, e.g. `px/http_data`.
    pub name: &'static str,
    /// PxL source.
    pub pxl: &'static str,
    /// One-line description (`short:` in `manifest.yaml`).
    pub short: &'static str,
    /// Longer description (`long:` in `manifest.yaml`).
    pub long: &'static str,
    /// Its vis spec (Pixie's `vis.json`), for a function-form script.
    pub vis: Option<&'static str>,
}

/// `(name, pxl, manifest)` of the bundled script in `px/<dir>/`: `<dir>.pxl` and `manifest.yaml`.
macro_rules! script {
    ($dir:literal) => {
        (
            concat!("px/", $dir),
            include_str!(concat!("../px/", $dir, "/", $dir, ".pxl")),
            include_str!(concat!("../px/", $dir, "/manifest.yaml")),
        )
    };
}

/// `(name, vis.json)` of the function-form script in `px/<dir>/`.
macro_rules! vis {
    ($dir:literal) => {
        (concat!("px/", $dir), include_str!(concat!("../px/", $dir, "/vis.json")))
    };
}

/// (name, pxl, manifest) of each script.
const SOURCES: &[(&str, &str, &str)] = &[
    script!("agent_status"),
    script!("amqp_data"),
    script!("cluster"),
    script!("conn_stats"),
    script!("dns_data"),
    script!("dns_flow_graph"),
    script!("dns_query_summary"),
    script!("funcs"),
    script!("http_data"),
    script!("http_data_filtered"),
    script!("http_errors"),
    script!("http_latency"),
    script!("http_post_requests"),
    script!("http_request_stats"),
    script!("http_request_throughput"),
    script!("http_status_counts"),
    script!("inbound_conns"),
    script!("kafka_overview"),
    script!("largest_http_request"),
    script!("mqtt_data"),
    script!("mysql_data"),
    script!("mysql_stats"),
    script!("namespace"),
    script!("nats_data"),
    script!("net_flow_graph"),
    script!("node"),
    script!("outbound_conns"),
    script!("perf_flamegraph"),
    script!("pgsql_data"),
    script!("pgsql_stats"),
    script!("pod"),
    script!("redis_data"),
    script!("redis_stats"),
    script!("schemas"),
    script!("service_stats"),
    script!("slow_http_requests"),
    script!("sql_queries"),
    script!("tables"),
];

/// (name, vis.json) of each function-form script.
const VIS: &[(&str, &str)] = &[
    vis!("agent_status"),
    vis!("amqp_data"),
    vis!("cluster"),
    vis!("conn_stats"),
    vis!("dns_data"),
    vis!("dns_flow_graph"),
    vis!("dns_query_summary"),
    vis!("funcs"),
    vis!("http_data_filtered"),
    vis!("http_errors"),
    vis!("http_latency"),
    vis!("http_post_requests"),
    vis!("http_request_throughput"),
    vis!("inbound_conns"),
    vis!("kafka_overview"),
    vis!("largest_http_request"),
    vis!("mqtt_data"),
    vis!("mysql_data"),
    vis!("mysql_stats"),
    vis!("namespace"),
    vis!("nats_data"),
    vis!("net_flow_graph"),
    vis!("node"),
    vis!("outbound_conns"),
    vis!("perf_flamegraph"),
    vis!("pgsql_data"),
    vis!("pgsql_stats"),
    vis!("pod"),
    vis!("redis_data"),
    vis!("redis_stats"),
    vis!("schemas"),
    vis!("service_stats"),
    vis!("slow_http_requests"),
    vis!("sql_queries"),
    vis!("tables"),
];

/// Every bundled script, sorted by name.
pub fn scripts() -> &'static [BundledScript] {
    static SCRIPTS: OnceLock<Vec<BundledScript>> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let mut v: Vec<BundledScript> = SOURCES
            .iter()
            .map(|(name, pxl, manifest)| BundledScript {
                name,
                pxl,
                short: manifest_field(manifest, "short"),
                long: manifest_field(manifest, "long"),
                vis: VIS.iter().find(|(n, _)| n == name).map(|(_, v)| *v),
            })
            .collect();
        v.sort_by_key(|s| s.name);
        v
    })
}

/// The bundled script called `name` (`px/http_data`).
pub fn get(name: &str) -> Option<&'static BundledScript> {
    scripts().iter().find(|s| s.name == name)
}

/// The reference page `docs/scripts.md`: every bundled script with its descriptions and how it runs.
pub fn scripts_markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# Bundled scripts\n\nGenerated from `crates/scripts/px/*/manifest.yaml` (`cargo test -p loupe-scripts` \
         checks it; `LOUPE_BLESS=1 cargo test -p loupe-scripts` rewrites it). `px run --list` lists them, `px run \
         px/<name>` runs one, and the UI's live view draws one at `/live/px/<name>`. A script with a vis spec is \
         function-form: its widgets call its functions with the spec's variables, which `px run px/<name> -- \
         --start_time=-15m` sets. Each has a golden test over the checked-in data set `crates/scripts/testdata/fixture.json`.\n\n\
         | script | form | what it shows |\n|---|---|---|\n",
    );
    for s in scripts() {
        let form = if s.vis.is_some() { "vis spec" } else { "top level" };
        let _ = writeln!(out, "| `{}` | {form} | **{}.** {} |", s.name, s.short, s.long);
    }
    out
}

/// The value of a one-line `key: value` entry of a manifest (empty when absent).
fn manifest_field(manifest: &'static str, key: &str) -> &'static str {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().trim_matches('"'))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_script_has_a_manifest() {
        let names: Vec<&str> = scripts().iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "px/agent_status",
                "px/amqp_data",
                "px/cluster",
                "px/conn_stats",
                "px/dns_data",
                "px/dns_flow_graph",
                "px/dns_query_summary",
                "px/funcs",
                "px/http_data",
                "px/http_data_filtered",
                "px/http_errors",
                "px/http_latency",
                "px/http_post_requests",
                "px/http_request_stats",
                "px/http_request_throughput",
                "px/http_status_counts",
                "px/inbound_conns",
                "px/kafka_overview",
                "px/largest_http_request",
                "px/mqtt_data",
                "px/mysql_data",
                "px/mysql_stats",
                "px/namespace",
                "px/nats_data",
                "px/net_flow_graph",
                "px/node",
                "px/outbound_conns",
                "px/perf_flamegraph",
                "px/pgsql_data",
                "px/pgsql_stats",
                "px/pod",
                "px/redis_data",
                "px/redis_stats",
                "px/schemas",
                "px/service_stats",
                "px/slow_http_requests",
                "px/sql_queries",
                "px/tables",
            ]
        );
        for s in scripts() {
            assert!(!s.short.is_empty() && !s.long.is_empty(), "{} manifest", s.name);
            // Top-level scripts display; function-form scripts are called by their vis spec's widgets.
            match s.vis {
                None => assert!(s.pxl.contains("px.display("), "{} displays nothing", s.name),
                Some(vis) => assert!(vis.contains("\"widgets\"") && s.pxl.contains("\ndef "), "{} vis spec", s.name),
            }
        }
    }

    #[test]
    fn every_script_directory_is_bundled() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("px");
        let mut dirs: Vec<String> = std::fs::read_dir(&dir)
            .expect("px/")
            .map(|e| format!("px/{}", e.expect("entry").file_name().to_string_lossy()))
            .collect();
        dirs.sort();
        let names: Vec<&str> = scripts().iter().map(|s| s.name).collect();
        assert_eq!(dirs, names, "each px/<dir> needs a script!(..) line in SOURCES (and vis!(..) in VIS)");
        for s in scripts() {
            let has_vis_file = dir.join(s.name.trim_start_matches("px/")).join("vis.json").exists();
            assert_eq!(has_vis_file, s.vis.is_some(), "{}: vis.json and VIS disagree", s.name);
        }
    }

    /// `docs/scripts.md` is what the manifests say; `LOUPE_BLESS=1` rewrites it.
    #[test]
    fn scripts_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scripts.md");
        let want = scripts_markdown();
        if std::env::var_os("LOUPE_BLESS").is_some() {
            std::fs::write(&path, &want).expect("write docs/scripts.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/scripts.md is stale: run `LOUPE_BLESS=1 cargo test -p loupe-scripts` and commit it"
        );
    }

    #[test]
    fn get_finds_by_name() {
        assert_eq!(get("px/http_data").map(|s| s.name), Some("px/http_data"));
        assert!(get("px/nope").is_none());
    }
}
