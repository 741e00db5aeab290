//! Compile-time time values: relative time strings, absolute ones (`px.parse_time`) and `px.<unit>(n)` durations.
//!
//! Owns parsing of `'-5m'`-style strings (an optional minus, digits, a unit of `ms`, `s`, `m`,
//! `h` or `d`) into signed nanoseconds. Must not read the clock: the caller passes "now".

/// Nanoseconds per unit name used by `px.<unit>(n)`.
pub(crate) fn unit_ns(func: &str) -> Option<i64> {
    Some(match func {
        "days" => 86_400_000_000_000,
        "hours" => 3_600_000_000_000,
        "minutes" => 60_000_000_000,
        "seconds" => 1_000_000_000,
        "milliseconds" => 1_000_000,
        "microseconds" => 1_000,
        _ => return None,
    })
}

/// Parses a duration string like `-5m`, `30s`, `1h`, `250ms`, `2d` into signed nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let t = text.trim();
    let (negative, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits_end = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits_end == 0 {
        return None;
    }
    let n: i64 = rest[..digits_end].parse().ok()?;
    let unit = match &rest[digits_end..] {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    let ns = n.checked_mul(unit)?;
    Some(if negative { -ns } else { ns })
}

/// An absolute time string (RFC 3339 and close relatives: `2020-07-13T18:02:05Z`, `2020-07-13 18:02:05.5
/// +00:00`, a date alone) as nanoseconds since the epoch; a zone written `+0000` is taken too.
pub(crate) fn parse_absolute(text: &str) -> Option<i64> {
    use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
    let t = text.trim();
    if let Ok(ns) = string_to_timestamp_nanos(t) {
        return Some(ns);
    }
    // `+0000` → `+00:00`, the form arrow reads.
    let (head, zone) = t.rsplit_once(['+', '-'])?;
    let sign = &t[head.len()..head.len() + 1];
    if zone.len() == 4 && zone.bytes().all(|b| b.is_ascii_digit()) && head.contains(':') {
        return string_to_timestamp_nanos(&format!("{}{sign}{}:{}", head.trim_end(), &zone[..2], &zone[2..])).ok();
    }
    None
}

/// `px.format_duration(ns)`: the largest whole unit of `d`, `h`, `m`, `s`, `ms` that fits, rounded down,
/// sign kept (`-300_000_000_000` is `-5m`; below a millisecond, `0ms`).
pub(crate) fn format_duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    let units: [(u64, &str); 4] =
        [(86_400_000_000_000, "d"), (3_600_000_000_000, "h"), (60_000_000_000, "m"), (1_000_000_000, "s")];
    for (size, unit) in units {
        if abs >= size {
            return format!("{sign}{}{unit}", abs / size);
        }
    }
    format!("{sign}{}ms", abs / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_times_in_the_usual_forms() {
        let t = Some(1_594_663_325_000_000_000);
        assert_eq!(parse_absolute("2020-07-13T18:02:05Z"), t);
        assert_eq!(parse_absolute("2020-07-13 18:02:05 +0000"), t);
        assert_eq!(parse_absolute("2020-07-13 20:02:05+02:00"), t);
        assert_eq!(parse_absolute("2020-07-13 16:02:05 -0200"), t);
        assert_eq!(parse_absolute("2020-07-13"), Some(1_594_598_400_000_000_000));
        assert_eq!(parse_absolute("-5m"), None);
        assert_eq!(parse_absolute("soon"), None);
    }

    #[test]
    fn relative_strings() {
        assert_eq!(parse_duration("-5m"), Some(-300_000_000_000));
        assert_eq!(parse_duration("-30s"), Some(-30_000_000_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_duration("-250ms"), Some(-250_000_000));
        assert_eq!(parse_duration("-2d"), Some(-172_800_000_000_000));
        assert_eq!(parse_duration("-5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("-5w"), None);
        assert_eq!(parse_duration("-99999999999999999999m"), None);
    }

    #[test]
    fn durations_format_to_their_largest_whole_unit() {
        assert_eq!(format_duration(-300_000_000_000), "-5m");
        assert_eq!(format_duration(-300_000_000_000 + 5), "-4m");
        assert_eq!(format_duration(-5 * 3_600_000_000_000), "-5h");
        assert_eq!(format_duration(2 * 86_400_000_000_000 + 1), "2d");
        assert_eq!(format_duration(1_500_000_000), "1s");
        assert_eq!(format_duration(2_500_000), "2ms");
        assert_eq!(format_duration(0), "0ms");
        assert_eq!(format_duration(i64::MIN), "-106751d");
        assert_eq!(parse_duration(&format_duration(-600_000_000_000)), Some(-600_000_000_000));
    }
}
