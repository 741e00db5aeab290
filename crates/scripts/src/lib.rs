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

/// (name, pxl, manifest) of each script.
const SOURCES: &[(&str, &str, &str)] = &[
    ("px/http_data", include_str!("../px/http_data/http_data.pxl"), include_str!("../px/http_data/manifest.yaml")),
    (
        "px/http_request_stats",
        include_str!("../px/http_request_stats/http_request_stats.pxl"),
        include_str!("../px/http_request_stats/manifest.yaml"),
    ),
    (
        "px/http_status_counts",
        include_str!("../px/http_status_counts/http_status_counts.pxl"),
        include_str!("../px/http_status_counts/manifest.yaml"),
    ),
    (
        "px/perf_flamegraph",
        include_str!("../px/perf_flamegraph/perf_flamegraph.pxl"),
        include_str!("../px/perf_flamegraph/manifest.yaml"),
    ),
];

/// (name, vis.json) of each function-form script.
const VIS: &[(&str, &str)] = &[("px/perf_flamegraph", include_str!("../px/perf_flamegraph/vis.json"))];

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
        assert_eq!(names, ["px/http_data", "px/http_request_stats", "px/http_status_counts", "px/perf_flamegraph"]);
        for s in scripts() {
            assert!(!s.short.is_empty() && !s.long.is_empty(), "{} manifest", s.name);
            // A function-form script displays what its vis spec's widgets call.
            assert!(s.pxl.contains("px.display(") || s.vis.is_some(), "{} displays nothing", s.name);
        }
    }

    #[test]
    fn get_finds_by_name() {
        assert_eq!(get("px/http_data").map(|s| s.name), Some("px/http_data"));
        assert!(get("px/nope").is_none());
    }
}
