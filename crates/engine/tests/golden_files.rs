//! Golden scripts as data: every `tests/golden/<name>.pxl` runs over the standard fixture, and its outputs must
//! equal `<name>.out` exactly (each output as `== <name>`, then its table with the data rows sorted).
//! `LOUPE_BLESS=1 cargo test -p loupe-engine` rewrites the `.out` files from what the engine answers: review the
//! diff before committing it. Adding a case is adding a `.pxl` file and blessing it.

use std::path::{Path, PathBuf};

use crate::common::{engine, lines, run};

#[test]
fn golden_scripts_match_their_expected_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("LOUPE_BLESS").is_some();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pxl"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "no golden scripts in {}", dir.display());
    let engine = engine();
    let mut failures = Vec::new();
    for script in &scripts {
        let source = std::fs::read_to_string(script).expect("read script");
        let mut actual = String::new();
        for out in run(&engine, &source) {
            actual.push_str(&format!("== {}\n", out.name));
            for line in lines(&out, true) {
                actual.push_str(&line);
                actual.push('\n');
            }
        }
        let expected_path = script.with_extension("out");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write .out");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{}\nexpected:\n{expected}actual:\n{actual}", script.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden scripts differ (LOUPE_BLESS=1 rewrites the .out files):\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n")
    );
}
