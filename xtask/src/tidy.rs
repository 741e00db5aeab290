//! Tidy checks: every Rust file opens with a `//!` doc, and crates depend only on crates above
//! them in the layering written in `docs/architecture.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Internal crates, top (depended on) to bottom. A crate may depend only on crates before it.
const LAYERS: &[&str] = &[
    "loupe-testkit",
    "loupe-common",
    "loupe-schema",
    "loupe-proto",
    "loupe-protocols",
    "loupe-bpf-common",
    "loupe-bpf",
    "loupe-store",
    "loupe-collector",
    "loupe-pxl",
    "loupe-engine",
    "loupe-metastore",
    "loupe-auth",
    "loupe-vizier",
    "loupe-cloud",
    "loupe-proxy",
    "loupe-cli",
    "loupe-server",
];

/// Test support: any crate may use it, but only as a dev-dependency.
const TESTKIT: &str = "loupe-testkit";

/// Edges that the layering alone would allow but the architecture forbids, with the reason.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("loupe-cli", "loupe-vizier", "px speaks only the public API"),
    ("loupe-cli", "loupe-engine", "px speaks only the public API"),
    ("loupe-cli", "loupe-collector", "px speaks only the public API"),
    ("loupe-cli", "loupe-store", "px speaks only the public API"),
    ("loupe-cli", "loupe-cloud", "px speaks only the public API"),
    ("loupe-cli", "loupe-auth", "px speaks only the public API"),
    ("loupe-cli", "loupe-metastore", "px speaks only the public API"),
    ("loupe-cli", "loupe-proxy", "px speaks only the public API"),
    ("loupe-pxl", "datafusion", "pxl plans; only engine executes"),
    ("loupe-pxl", "loupe-store", "pxl knows schemas, not storage"),
    ("loupe-store", "datafusion", "the store knows nothing of queries"),
    ("loupe-protocols", "tokio", "parsers do no I/O"),
    ("loupe-collector", "tokio", "the collector runs on its own thread"),
    ("loupe-auth", "sqlx", "auth is logic; storage is the metastore's"),
    ("loupe-cloud", "sqlx", "the cloud reaches storage only through the metastore trait"),
    ("loupe-cloud", "loupe-vizier", "the cloud reaches vizier only via proto"),
    ("loupe-cloud", "loupe-engine", "the cloud reaches vizier only via proto"),
    ("loupe-cloud", "loupe-collector", "the cloud reaches vizier only via proto"),
    ("loupe-metastore", "loupe-auth", "the metastore stores hashes; it never hashes or verifies"),
];

/// Every problem found, as one line each.
pub fn all_problems(root: &Path) -> Vec<String> {
    let mut p = missing_module_docs(root);
    p.extend(layering_problems(root));
    p
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Files whose first non-blank line is not a `//!` doc comment.
pub fn missing_module_docs(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for top in ["crates", "xtask", "fuzz/fuzz_targets"] {
        rust_files(&root.join(top), &mut files);
    }
    files
        .into_iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("#!["));
            !first.is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| format!("{}: add a `//!` module doc saying what it owns and what it must not touch", f.display()))
        .collect()
}

/// Dependency edges that break the layering or a forbidden rule.
pub fn layering_problems(root: &Path) -> Vec<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .output();
    let meta: serde_json::Value = match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or_default(),
        Ok(o) => return vec![format!("cargo metadata failed: {}", String::from_utf8_lossy(&o.stderr))],
        Err(e) => return vec![format!("cannot run cargo metadata: {e}")],
    };
    let mut problems = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        if name == "xtask" {
            continue;
        }
        let Some(rank) = LAYERS.iter().position(|l| *l == name) else {
            problems.push(format!("{name}: not placed in xtask's LAYERS list and docs/architecture.md"));
            continue;
        };
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let normal = dep["kind"].is_null();
            if dep_name == TESTKIT && dep["kind"].as_str() != Some("dev") {
                problems
                    .push(format!("{name} depends on {TESTKIT} outside [dev-dependencies]: it is test support only"));
            }
            if let Some(dep_rank) = LAYERS.iter().position(|l| *l == dep_name)
                && normal
                && dep_rank >= rank
            {
                problems.push(format!("{name} depends on {dep_name}, which sits at or below it in the layering"));
            }
            for (from, to, why) in FORBIDDEN {
                if *from == name && *to == dep_name && normal {
                    problems.push(format!("{name} must not depend on {dep_name}: {why}"));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rust_file_has_a_module_doc() {
        let p = missing_module_docs(&workspace_root());
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    #[test]
    fn crate_layering_holds() {
        let p = layering_problems(&workspace_root());
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    #[test]
    fn architecture_doc_names_every_crate() {
        let doc = std::fs::read_to_string(workspace_root().join("docs/architecture.md")).unwrap_or_default();
        let missing: Vec<_> = LAYERS.iter().filter(|c| !doc.contains(&format!("`{c}`"))).collect();
        assert!(missing.is_empty(), "docs/architecture.md lacks a code-map entry for {missing:?}");
    }
}
