//! The layout's names: hour partitions (`hour=YYYY-MM-DDTHH`, UTC), segment names, and which names are allowed
//! in a path; and local directories made private (0700).

use std::path::Path;

use crate::{HistoryError, Result};

/// Nanoseconds in an hour.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// The start of the UTC hour holding `time_ns`.
pub fn hour_start(time_ns: i64) -> i64 {
    time_ns.div_euclid(HOUR_NS) * HOUR_NS
}

/// The partition directory name of the hour starting at `hour_ns`: `hour=2026-12-03T17`.
pub fn hour_dir(hour_ns: i64) -> String {
    let secs = hour_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let (y, m, d) = civil_from_days(days);
    format!("hour={y:04}-{m:02}-{d:02}T{hour:02}")
}

/// The hour (its start, Unix ns) named by a partition directory such as `hour=2026-12-03T17`.
pub fn parse_hour_dir(name: &str) -> Option<i64> {
    let s = name.strip_prefix("hour=")?;
    let b = s.as_bytes();
    if b.len() != 13 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, h) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(0..24).contains(&h) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some((days * 86_400 + h * 3600) * 1_000_000_000)
}

/// A segment's file name: `<writer>-<first time_ ns>-<written ns>.parquet` (both zero-padded, so names sort
/// by time within an hour).
pub fn segment_name(writer: &str, first_time_ns: i64, written_ns: i64) -> String {
    format!("{writer}-{:020}-{:020}.parquet", first_time_ns.max(0), written_ns.max(0))
}

/// Whether `file` is a segment written by `writer`: exactly `<writer>-<20 digits>-<20 digits>.parquet`, so
/// that writer `node` does not claim `node-1`'s segments.
pub fn is_segment_of(file: &str, writer: &str) -> bool {
    let Some(rest) = file.strip_prefix(writer).and_then(|r| r.strip_prefix('-')) else { return false };
    let Some(stem) = rest.strip_suffix(".parquet") else { return false };
    let b = stem.as_bytes();
    b.len() == 41 && b[20] == b'-' && b.iter().enumerate().all(|(i, c)| i == 20 || c.is_ascii_digit())
}

/// Refuses an org, vizier or writer name that is not a safe single path component.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(HistoryError::Config(format!("{what} name {name:?}: use [A-Za-z0-9._-], at most 128")))
    }
}

/// Refuses a table name that is not a safe single path component.
pub fn check_table(table: &str) -> Result<()> {
    check_name("table", table)
}

/// Makes `dir` (and missing parents) with mode 0700, and sets 0700 on `dir` itself if it existed wider.
pub fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| HistoryError::Io { path: dir.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let meta = std::fs::metadata(dir).map_err(io)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Sets 0600 on a written segment and 0700 on each directory between it and `root` (the object store makes
/// them with the process's umask).
pub fn make_private_file(root: &Path, file: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|source| HistoryError::Io { path: p.to_path_buf(), source })
    };
    set(file, 0o600)?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        set(d, 0o700)?;
        dir = d.parent();
    }
    Ok(())
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_dirs_round_trip() {
        // 2026-12-03T17:23:38Z
        let t = 1_796_318_618_000_000_000;
        assert_eq!(hour_dir(hour_start(t)), "hour=2026-12-03T17");
        for h in [0, hour_start(t), 951_782_400_000_000_000 /* 2000-02-29 */, -HOUR_NS] {
            assert_eq!(parse_hour_dir(&hour_dir(h)), Some(h), "{}", hour_dir(h));
        }
        assert_eq!(parse_hour_dir("hour=2026-13-01T00"), None);
        assert_eq!(parse_hour_dir("day=2026-12-01"), None);
    }

    #[test]
    fn segment_names_belong_to_their_writer() {
        let n = segment_name("node-1", 5, 7);
        assert!(is_segment_of(&n, "node-1"));
        assert!(!is_segment_of(&n, "node"));
        assert!(check_name("org", "../x").is_err());
        assert!(check_name("org", "a/b").is_err());
        assert!(check_name("table", "stack_traces.beta").is_ok());
    }
}
