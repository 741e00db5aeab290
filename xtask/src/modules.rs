//! Tidy check: inside every crate, the graph of its top-level modules (`src/<m>.rs` or `src/<m>/mod.rs`) is
//! acyclic, so each crate reads as layers. An edge `a → b` is any path from a file of `a` to `b`: `crate::b…`,
//! `crate::{…, b…}`, `super::…` climbing to the crate root then `b`, or a name the crate root re-exports from
//! `b` (`pub use crate::b::Name`). Comments are ignored; `$crate` (macros) is not an edge.
//!
//! Owns this source scan only. Must not compile or expand anything: it reads text, so a path spelled inside a
//! string literal counts as an edge (none does today; rename the string if one ever does).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module graph of one crate: top-level module → the top-level modules it uses.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Text without `//` comments (line and doc) and `/* */` blocks, so prose naming a module is not an edge.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let line_comment = rest.find("//");
        let block_comment = rest.find("/*");
        match (line_comment, block_comment) {
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |end| &rest[l + end..]);
            }
            (_, Some(b)) => {
                out.push_str(&rest[..b]);
                rest = rest[b + 2..].find("*/").map_or("", |end| &rest[b + 2 + end + 2..]);
            }
            _ => {
                out.push_str(rest);
                rest = "";
            }
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first identifier of every item of a `{a::X, b, c::{…}}` group that `s` opens with.
fn group_heads(s: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expecting = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    expecting = true;
                    continue;
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                expecting = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && expecting && !c.is_whitespace() {
            heads.push(ident_at(&s[i..]));
            expecting = false;
        }
    }
    heads
}

/// The names a path in `code` reaches at the crate root, for a file at module path `module` (`["a", "b"]` for
/// `src/a/b.rs`, `["a"]` for `src/a.rs` or `src/a/mod.rs`).
fn root_names<'a>(code: &'a str, module: &[String]) -> Vec<&'a str> {
    let mut names = Vec::new();
    let bytes = code.as_bytes();
    for (i, _) in code.match_indices("crate::") {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        if before.is_some_and(|b| b == b'$' || b == b'_' || b.is_ascii_alphanumeric()) {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if rest.starts_with('{') {
            names.extend(group_heads(rest));
        } else {
            names.push(ident_at(rest));
        }
    }
    for (i, _) in code.match_indices("super::") {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        if before.is_some_and(|b| b == b':' || b == b'_' || b.is_ascii_alphanumeric()) {
            continue;
        }
        let mut rest = &code[i..];
        let mut depth = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            depth += 1;
            rest = r;
        }
        if depth == module.len() {
            if rest.starts_with('{') {
                names.extend(group_heads(rest));
            } else {
                names.push(ident_at(rest));
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The names the crate root re-exports, each with the top-level module it comes from.
fn root_reexports(root_code: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in root_code.split(';') {
        let Some(at) = statement.find("pub use crate::") else { continue };
        let path = &statement[at + "pub use crate::".len()..];
        let module = ident_at(path);
        if !modules.contains(module) {
            continue;
        }
        for word in path[module.len()..].split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !word.is_empty() && !matches!(word, "as" | "self" | "crate" | "super") {
                map.insert(word.to_owned(), module.to_owned());
            }
        }
    }
    map
}

/// Every `.rs` file under `dir`, recursively, appended to `out` (also the doc check's file list).
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

/// The top-level module graph of the crate whose sources are in `src`.
pub fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut modules = BTreeSet::new();
    let mut parsed = Vec::new();
    let mut root_code = String::new();
    for file in files {
        let Ok(relative) = file.strip_prefix(src) else { continue };
        let mut module: Vec<String> =
            relative.iter().map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
        if module.last().is_some_and(|last| last == "mod") {
            module.pop();
        }
        let code = strip_comments(&std::fs::read_to_string(&file).unwrap_or_default());
        if module.len() == 1 && matches!(module[0].as_str(), "lib" | "main") {
            root_code.push_str(&code);
            continue;
        }
        // Binaries' extra roots (`src/bin/x.rs`) are roots of other crates.
        if module.first().is_some_and(|first| first == "bin") {
            continue;
        }
        // A module's unit tests (`x/tests.rs`) may drive it together with a sibling, as the
        // redaction tests of each protocol do: no code of the module depends on the sibling for it.
        if module.len() > 1 && module.last().is_some_and(|last| last == "tests") {
            continue;
        }
        modules.insert(module[0].clone());
        parsed.push((module, code));
    }
    let reexports = root_reexports(&root_code, &modules);
    let mut graph: Graph = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (module, code) in &parsed {
        let from = &module[0];
        for name in root_names(code, module) {
            let to = if modules.contains(name) { Some(name) } else { reexports.get(name).map(String::as_str) };
            if let Some(to) = to.filter(|to| *to != from.as_str())
                && let Some(edges) = graph.get_mut(from)
            {
                edges.insert(to.to_owned());
            }
        }
    }
    graph
}

/// One cycle of `graph`, as `a → b → a`, if it has any.
pub fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(node: &str, graph: &Graph, marks: &mut BTreeMap<String, Mark>, stack: &mut Vec<String>) -> bool {
        match marks.get(node) {
            Some(Mark::Done) => return false,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                stack.drain(..start);
                stack.push(node.to_owned());
                return true;
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if visit(next, graph, marks, stack) {
                return true;
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        false
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        let mut stack = Vec::new();
        if visit(node, graph, &mut marks, &mut stack) {
            return Some(stack);
        }
    }
    None
}

/// Every crate (`crates/*/src`, `xtask/src`) whose top-level module graph has a cycle, one line each.
pub fn module_cycle_problems(root: &Path) -> Vec<String> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|entries| entries.flatten().map(|e| e.path().join("src")).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    sources.push(root.join("xtask/src"));
    sources.sort();
    sources
        .iter()
        .filter_map(|src| {
            let cycle = find_cycle(&module_graph(src))?;
            Some(format!(
                "{}: its top-level modules use each other in a cycle: {} (make one of them depend on the other only)",
                src.display(),
                cycle.join(" → ")
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-modules-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn every_crate_module_graph_is_acyclic() {
        // The root as `tidy::workspace_root` finds it, computed here so that this module uses no other.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let p = module_cycle_problems(root);
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    #[test]
    fn every_way_of_naming_a_module_is_an_edge_and_comments_are_not() {
        let dir = scratch("edges");
        write(
            &dir,
            &[
                (
                    "lib.rs",
                    "//! root\npub mod a; pub mod b; pub mod c; pub mod d; pub mod e;\npub use crate::e::{Thing, Other as O};\n",
                ),
                ("a.rs", "//! uses `crate::d` only in prose\nuse crate::b::X;\n"),
                ("b/mod.rs", "use crate::{c::Y, self as _};\nmod inner;\n"),
                ("b/inner.rs", "fn f() { super::super::d::g(); $crate::a::h(); }\n"),
                ("c.rs", "fn f() -> crate::Thing { todo!() }\n"),
                ("d.rs", "/* crate::a */\n"),
                ("d/tests.rs", "use crate::a::X;\n"),
                ("e.rs", "pub struct Thing; pub struct Other;\n"),
            ],
        );
        let graph = module_graph(&dir);
        let edges = |m: &str| graph[m].iter().cloned().collect::<Vec<_>>();
        assert_eq!(edges("a"), ["b"]);
        assert_eq!(edges("b"), ["c", "d"]);
        assert_eq!(edges("c"), ["e"]);
        assert!(edges("d").is_empty() && edges("e").is_empty());
        assert_eq!(find_cycle(&graph), None);

        write(&dir, &[("e.rs", "use super::a;\npub struct Thing; pub struct Other;\n")]);
        let cycle = find_cycle(&module_graph(&dir)).expect("a cycle");
        assert_eq!(cycle, ["a", "b", "c", "e", "a"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
