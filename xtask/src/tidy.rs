//! Tidy checks: every Rust file opens with a `//!` doc, and every crate's dependencies are exactly what its
//! section of `docs/architecture.md` lists, in the layering order of that map, with none of its `**Never:**`
//! crates. The map is the single source: edit it and the check follows. Inside each crate, `modules` checks
//! that the top-level modules form no cycle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Test support: any crate may use it, but only as a dev-dependency.
const TESTKIT: &str = "loupe-testkit";

/// What `docs/architecture.md` says one crate may use: its section's place in the layering and the lines
/// `**Depends on:**`, `**Build:**`, `**Tests also:**` and `**Never:**`, each a list of backticked crate names.
#[derive(Debug, Default)]
pub struct CrateRules {
    /// The package name, from the section heading (`### \`name\``).
    pub name: String,
    /// Normal dependencies, exactly.
    pub normal: BTreeSet<String>,
    /// Build dependencies, exactly.
    pub build: BTreeSet<String>,
    /// Dev-dependencies, exactly.
    pub dev: BTreeSet<String>,
    /// Crates it must never depend on, of any kind (the invariants an allow-list edit must not quietly drop).
    pub never: BTreeSet<String>,
}

/// The rules of every crate, in the map's order: top of the dependency graph (depended on) first.
pub fn rules_from_doc(doc: &str) -> Vec<CrateRules> {
    let mut rules: Vec<CrateRules> = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("### `") {
            let name = heading.split('`').next().unwrap_or_default();
            rules.push(CrateRules { name: name.to_string(), ..CrateRules::default() });
            continue;
        }
        if line.starts_with("## ") && !rules.is_empty() {
            break; // the code map ended
        }
        let Some(current) = rules.last_mut() else { continue };
        for (label, list) in [
            ("**Depends on:**", &mut current.normal),
            ("**Build:**", &mut current.build),
            ("**Tests also:**", &mut current.dev),
            ("**Never:**", &mut current.never),
        ] {
            if let Some(rest) = line.strip_prefix(label) {
                list.extend(rest.split('`').skip(1).step_by(2).map(str::to_string));
            }
        }
    }
    rules
}

/// Every dependency edge that the map does not say, as one line each: a crate missing from the map (or a map
/// section naming no crate), a dependency not listed (or listed but absent), an internal normal dependency on
/// a crate at or below it, a `**Never:**` crate, and test support outside dev-dependencies.
pub fn edge_problems(rules: &[CrateRules], metadata: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let packages: Vec<&serde_json::Value> = metadata["packages"].as_array().into_iter().flatten().collect();
    let rank = |name: &str| rules.iter().position(|r| r.name == name);
    for section in rules {
        if !packages.iter().any(|p| p["name"] == section.name.as_str()) {
            problems.push(format!("docs/architecture.md has a section for `{}`, which is no package", section.name));
        }
    }
    for pkg in packages {
        let name = pkg["name"].as_str().unwrap_or_default();
        let Some(own_rank) = rank(name) else {
            problems.push(format!("{name}: no section in docs/architecture.md (its place and dependencies)"));
            continue;
        };
        let rule = &rules[own_rank];
        let mut seen: [BTreeSet<String>; 3] = Default::default();
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default().to_string();
            let kind = dep["kind"].as_str().unwrap_or("normal");
            let (index, allowed, label) = match kind {
                "build" => (1, &rule.build, "**Build:**"),
                "dev" => (2, &rule.dev, "**Tests also:**"),
                _ => (0, &rule.normal, "**Depends on:**"),
            };
            if !allowed.contains(&dep_name) {
                problems.push(format!("{name} has the {kind} dependency {dep_name}, which its {label} line lacks"));
            }
            if rule.never.contains(&dep_name) {
                problems.push(format!("{name} must never depend on {dep_name} (its **Never:** line)"));
            }
            if dep_name == TESTKIT && kind != "dev" {
                problems
                    .push(format!("{name} depends on {TESTKIT} outside [dev-dependencies]: it is test support only"));
            }
            if kind == "normal"
                && let Some(dep_rank) = rank(&dep_name)
                && dep_rank >= own_rank
            {
                problems.push(format!("{name} depends on {dep_name}, which sits at or below it in the layering"));
            }
            seen[index].insert(dep_name);
        }
        for (listed, present, label) in [
            (&rule.normal, &seen[0], "**Depends on:**"),
            (&rule.build, &seen[1], "**Build:**"),
            (&rule.dev, &seen[2], "**Tests also:**"),
        ] {
            for stale in listed.difference(present) {
                problems.push(format!("{name}'s {label} line lists {stale}, which it does not use"));
            }
        }
    }
    problems
}

/// Every problem found, as one line each.
pub fn all_problems(root: &Path) -> Vec<String> {
    let mut p = missing_module_docs(root);
    p.extend(layering_problems(root));
    p.extend(crate::modules::module_cycle_problems(root));
    p
}

/// Files whose first non-blank line is not a `//!` doc comment.
pub fn missing_module_docs(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for top in ["crates", "xtask", "fuzz/fuzz_targets"] {
        crate::modules::rust_files(&root.join(top), &mut files);
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

/// `cargo metadata` of the workspace's own packages.
fn workspace_metadata(root: &Path) -> Result<serde_json::Value, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata printed no JSON: {e}"))
}

/// Dependency edges that `docs/architecture.md` does not allow.
pub fn layering_problems(root: &Path) -> Vec<String> {
    let doc = match std::fs::read_to_string(root.join("docs/architecture.md")) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("cannot read docs/architecture.md: {e}")],
    };
    match workspace_metadata(root) {
        Ok(metadata) => edge_problems(&rules_from_doc(&doc), &metadata),
        Err(problem) => vec![problem],
    }
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

    /// The real map and the real metadata, with one edge added that the map forbids: tidy must say so.
    fn problems_with_extra_edge(from: &str, to: &str, kind: Option<&str>) -> Vec<String> {
        let root = workspace_root();
        let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("architecture.md");
        let mut metadata = workspace_metadata(&root).expect("metadata");
        let packages = metadata["packages"].as_array_mut().expect("packages");
        let pkg = packages.iter_mut().find(|p| p["name"] == from).expect("package");
        let deps = pkg["dependencies"].as_array_mut().expect("dependencies");
        deps.push(serde_json::json!({ "name": to, "kind": kind }));
        edge_problems(&rules_from_doc(&doc), &metadata)
    }

    #[test]
    fn an_added_forbidden_edge_fails() {
        let p = problems_with_extra_edge("loupe-protocols", "tokio", None);
        assert!(p.iter().any(|l| l.contains("loupe-protocols must never depend on tokio")), "{p:?}");
        let p = problems_with_extra_edge("loupe-cli", "loupe-vizier", None);
        assert!(p.iter().any(|l| l.contains("loupe-cli must never depend on loupe-vizier")), "{p:?}");
        let p = problems_with_extra_edge("loupe-common", "loupe-store", None);
        assert!(p.iter().any(|l| l.contains("sits at or below it")), "{p:?}");
        let p = problems_with_extra_edge("loupe-store", "loupe-testkit", None);
        assert!(p.iter().any(|l| l.contains("outside [dev-dependencies]")), "{p:?}");
        // Not listed at all, even as a dev-dependency: the allow-list covers tests too.
        let p = problems_with_extra_edge("loupe-schema", "rand", Some("dev"));
        assert!(p.iter().any(|l| l.contains("loupe-schema has the dev dependency rand")), "{p:?}");
    }

    #[test]
    fn the_map_lists_no_dependency_a_crate_lacks() {
        let rules = rules_from_doc("### `a` (`crates/a`)\n**Depends on:** `b`\n### `b` (`crates/b`)\n");
        let metadata = serde_json::json!({ "packages": [
            { "name": "a", "dependencies": [] },
            { "name": "b", "dependencies": [] },
        ]});
        assert_eq!(edge_problems(&rules, &metadata), vec!["a's **Depends on:** line lists b, which it does not use"]);
    }
}
