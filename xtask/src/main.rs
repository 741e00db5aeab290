//! Repository chores. `cargo run -p xtask -- tidy` runs the tidy checks that `cargo test` also
//! runs: module docs present, crate layering respected, no cycle among a crate's top-level modules.
//!
//! Owns checks over the source tree itself. Must not be depended on by any product crate.

mod ci;
mod modules;
mod tidy;

fn main() -> std::process::ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("tidy") => {
            let problems = tidy::all_problems(&tidy::workspace_root());
            for p in &problems {
                eprintln!("{p}");
            }
            if problems.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
        }
        _ => {
            eprintln!("usage: cargo run -p xtask -- tidy");
            std::process::ExitCode::from(2)
        }
    }
}
