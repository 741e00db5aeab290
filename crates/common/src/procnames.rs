//! Command lines of processes the agent has seen, kept after the processes exit.
//!
//! Owns a small process-wide memory, `upid → command line`, that the collector fills as it meets
//! processes (the `/proc` scan of `process_stats`) and `px.upid_to_cmdline` reads when `/proc` no
//! longer has the process: rows of `proc_exit_events`, or of any table, outlive their processes.
//! Bounded in entries and bytes per entry; the oldest entry goes first. Must not read `/proc`
//! itself: callers hand it what they read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

/// Most processes remembered.
pub const MAX_ENTRIES: usize = 16_384;
/// Longest command line kept, in bytes (cut at a character boundary).
pub const MAX_CMDLINE_BYTES: usize = 1024;

#[derive(Default)]
struct Names {
    by_upid: HashMap<String, String>,
    order: VecDeque<String>,
}

fn names() -> &'static Mutex<Names> {
    static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
    NAMES.get_or_init(Mutex::default)
}

/// Remembers `cmdline` as the command line of `upid` (text form); an empty one is not kept.
pub fn remember(upid: &str, cmdline: &str) {
    if cmdline.is_empty() {
        return;
    }
    let mut end = cmdline.len().min(MAX_CMDLINE_BYTES);
    while !cmdline.is_char_boundary(end) {
        end -= 1;
    }
    let Ok(mut names) = names().lock() else { return };
    if names.by_upid.insert(upid.to_string(), cmdline[..end].to_string()).is_none() {
        names.order.push_back(upid.to_string());
        while names.order.len() > MAX_ENTRIES {
            if let Some(oldest) = names.order.pop_front() {
                names.by_upid.remove(&oldest);
            }
        }
    }
}

/// The command line remembered for `upid`, if any.
pub fn recall(upid: &str) -> Option<String> {
    names().lock().ok()?.by_upid.get(upid).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_bounded_and_forgets_the_oldest() {
        remember("9:1:1", "python3 -c pass");
        remember("9:1:2", "");
        assert_eq!(recall("9:1:1").as_deref(), Some("python3 -c pass"));
        assert_eq!(recall("9:1:2"), None);
        let long = "é".repeat(MAX_CMDLINE_BYTES);
        remember("9:2:1", &long);
        let kept = recall("9:2:1").expect("kept");
        assert!(kept.len() <= MAX_CMDLINE_BYTES && long.starts_with(&kept));
        for i in 0..MAX_ENTRIES {
            remember(&format!("9:3:{i}"), "x");
        }
        assert_eq!(recall("9:1:1"), None, "the oldest went first");
        assert_eq!(recall(&format!("9:3:{}", MAX_ENTRIES - 1)).as_deref(), Some("x"));
    }
}
