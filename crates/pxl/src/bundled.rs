//! The `px/*` scripts shipped inside the binary, with their manifest descriptions.
//!
//! Owns the list of bundled scripts (sources under `crates/pxl/scripts/`, embedded with
//! `include_str!`) and reading the `short:` line of each `manifest.yaml`. Must not compile or
//! run them; callers do.

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
}

/// (name, pxl, manifest) of each script.
const SOURCES: &[(&str, &str, &str)] = &[
    (
        "px/http_data",
        include_str!("../scripts/px/http_data/http_data.pxl"),
        include_str!("../scripts/px/http_data/manifest.yaml"),
    ),
    (
        "px/http_request_stats",
        include_str!("../scripts/px/http_request_stats/http_request_stats.pxl"),
        include_str!("../scripts/px/http_request_stats/manifest.yaml"),
    ),
    (
        "px/http_status_counts",
        include_str!("../scripts/px/http_status_counts/http_status_counts.pxl"),
        include_str!("../scripts/px/http_status_counts/manifest.yaml"),
    ),
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
    use crate::{CompileOptions, SchemaCatalog, compile};

    #[test]
    fn every_bundled_script_compiles_against_the_schema_catalog() {
        let opts = CompileOptions { now_ns: 1_700_000_000_000_000_000 };
        assert_eq!(scripts().len(), 3);
        for s in scripts() {
            assert!(!s.short.is_empty() && !s.long.is_empty(), "{} manifest", s.name);
            let program = compile(s.pxl, &SchemaCatalog, &opts).unwrap_or_else(|d| {
                panic!("{}: {}", s.name, d.iter().map(|d| d.render(s.pxl, s.name)).collect::<String>())
            });
            assert_eq!(program.outputs.len(), 1, "{}", s.name);
        }
    }

    #[test]
    fn get_finds_by_name() {
        assert_eq!(get("px/http_data").map(|s| s.name), Some("px/http_data"));
        assert!(get("px/nope").is_none());
    }
}
