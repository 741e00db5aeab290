//! Fuzz target: arbitrary bytes into the cgroup path parser of `loupe_common::cgroup` (the path of a line of
//! `/proc/PID/cgroup`). Run with `cargo fuzz run cgroup` from `fuzz/`.
//!
//! Owns nothing but this harness. A container's cgroup path is named by whoever started it: the parser must
//! never panic, and what it returns must come from the path (a pod UID is 36 characters, a container id hex).

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_common::cgroup::parse_cgroup_path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(found) = parse_cgroup_path(&text) {
        if let Some(uid) = &found.pod_uid {
            assert_eq!(uid.len(), 36, "{uid}");
        }
        if let Some(id) = &found.container_id {
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()) && text.contains(id.as_str()), "{id}");
        }
    }
});
