//! When a cron script runs: a [`Schedule`] is a period or a five-field cron expression (UTC), and
//! [`Schedule::next_after`] gives the next run time strictly after an instant. The cloud checks expressions with
//! it when a script is saved; the vizier's scheduler runs scripts with it.
//!
//! A period runs at the multiples of itself since the Unix epoch, not from when a vizier learnt the script: every
//! vizier runs a script at the same instants, and a restarted vizier neither repeats nor shifts a run, so the
//! run time names the run. Cron expressions are POSIX's: `minute hour day-of-month month day-of-week`, each `*`,
//! a number, a range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those; day-of-week 0 and 7 are Sunday;
//! when both day fields are restricted a day matching either runs (as cron does). `@hourly`, `@daily`,
//! `@weekly`, `@monthly` and `@yearly` are the usual shorthands.
//!
//! Owns the schedule arithmetic. Must not touch clocks or I/O: callers pass the instant.

use std::fmt;

const NS_PER_SEC: i64 = 1_000_000_000;
const NS_PER_MIN: i64 = 60 * NS_PER_SEC;
/// How far ahead a cron expression is searched: an expression with no run in five years (`0 0 30 2 *`) has none.
const SEARCH_DAYS: i64 = 5 * 366;

/// A cron script's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every this many seconds (≥ 1), at multiples of it since the epoch.
    Every(i64),
    /// A cron expression.
    Cron(CronExpr),
}

/// Why a schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError(String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScheduleError {}

impl Schedule {
    /// A schedule from a period in seconds (> 0) or a cron expression (non-empty), exactly one of them.
    pub fn new(frequency_s: i64, cron_expr: &str) -> Result<Self, ScheduleError> {
        match (frequency_s, cron_expr.trim()) {
            (f, "") if f > 0 => Ok(Schedule::Every(f)),
            (0, expr) if !expr.is_empty() => Ok(Schedule::Cron(CronExpr::parse(expr)?)),
            (f, "") => Err(ScheduleError(format!("a period must be at least 1 second, got {f}"))),
            _ => Err(ScheduleError("give a period or a cron expression, not both".into())),
        }
    }

    /// The first run time strictly after `after_ns` (Unix ns); `None` when there is none (a cron expression
    /// naming a day that never comes).
    pub fn next_after(&self, after_ns: i64) -> Option<i64> {
        match self {
            Schedule::Every(secs) => {
                let period = secs.checked_mul(NS_PER_SEC)?;
                after_ns.div_euclid(period).checked_add(1)?.checked_mul(period)
            }
            Schedule::Cron(expr) => expr.next_after(after_ns),
        }
    }
}

/// A parsed five-field cron expression. Each field is a bit set of the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month / day-of-week were `*` (then only the other one restricts days).
    any_day: bool,
    any_weekday: bool,
}

impl CronExpr {
    /// Parses `minute hour day-of-month month day-of-week`, or a shorthand.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let text = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(ScheduleError(format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            )));
        };
        let mut weekdays = field(weekday, "day-of-week", 0, 7)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(CronExpr {
            minutes: field(minute, "minute", 0, 59)?,
            hours: field(hour, "hour", 0, 23)?,
            days: field(day, "day-of-month", 1, 31)?,
            months: field(month, "month", 1, 12)?,
            weekdays,
            any_day: day == "*",
            any_weekday: weekday == "*",
        })
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => by_day || by_weekday,
            _ => by_day && by_weekday,
        }
    }

    /// The first matching minute strictly after `after_ns`.
    pub fn next_after(&self, after_ns: i64) -> Option<i64> {
        let start_min = after_ns.div_euclid(NS_PER_MIN) + 1;
        let first_day = start_min.div_euclid(24 * 60);
        for day_index in first_day..first_day + SEARCH_DAYS {
            let (_, month, day) = civil_from_days(day_index);
            // 1970-01-01 was a Thursday (4).
            let weekday = (day_index + 4).rem_euclid(7) as u32;
            if self.months & (1 << month) == 0 || !self.day_matches(day, weekday) {
                continue;
            }
            let from = if day_index == first_day { start_min.rem_euclid(24 * 60) } else { 0 };
            for minute_of_day in from..24 * 60 {
                let (h, m) = (minute_of_day / 60, minute_of_day % 60);
                if self.hours & (1 << h) != 0 && self.minutes & (1 << m) != 0 {
                    return Some((day_index * 24 * 60 + minute_of_day) * NS_PER_MIN);
                }
            }
        }
        None
    }
}

/// One field as a bit set over `lo..=hi`.
fn field(text: &str, name: &str, lo: u32, hi: u32) -> Result<u64, ScheduleError> {
    let bad = |why: String| ScheduleError(format!("cron {name} field {text:?}: {why}"));
    let number = |s: &str| -> Result<u32, ScheduleError> {
        let n: u32 = s.parse().map_err(|_| bad(format!("{s:?} is not a number")))?;
        if n < lo || n > hi {
            return Err(bad(format!("{n} is outside {lo}-{hi}")));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad(format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(bad("a step must be at least 1".into()));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                // `5/15` means from 5 to the end, every 15.
                None if step > 1 => (number(r)?, hi),
                None => {
                    let n = number(r)?;
                    (n, n)
                }
            },
        };
        if from > to {
            return Err(bad(format!("range {from}-{to} is backwards")));
        }
        for v in (from..=to).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS_PER_SEC;
    /// 2026-12-02 17:52:48 UTC, a Wednesday.
    const NOW: i64 = 1_796_233_968 * S;

    fn cron(expr: &str) -> Schedule {
        Schedule::new(0, expr).expect(expr)
    }

    #[test]
    fn a_period_runs_at_its_multiples_since_the_epoch() {
        let every10 = Schedule::new(10, "").expect("10 s");
        assert_eq!(every10.next_after(NOW), Some(1_796_233_970 * S));
        assert_eq!(every10.next_after(1_796_233_970 * S), Some(1_796_233_980 * S), "strictly after");
        assert_eq!(every10.next_after(1_796_233_970 * S - 1), Some(1_796_233_970 * S));
        let hourly = Schedule::new(3600, "").expect("1 h");
        assert_eq!(hourly.next_after(NOW), Some(1_796_234_400 * S), "18:00");
        assert_eq!(Schedule::new(10, "").expect("10 s").next_after(-1), Some(0));
    }

    #[test]
    fn cron_expressions_find_the_next_minute() {
        // Every 5 minutes: 17:55:00.
        assert_eq!(cron("*/5 * * * *").next_after(NOW), Some(1_796_234_100 * S));
        // Every minute: 17:53:00.
        assert_eq!(cron("* * * * *").next_after(NOW), Some(1_796_233_980 * S));
        // 09:30 daily: tomorrow, 2026-12-03 09:30.
        assert_eq!(cron("30 9 * * *").next_after(NOW), Some(1_796_290_200 * S));
        // Mondays at midnight: 2026-12-07 00:00.
        assert_eq!(cron("0 0 * * 1").next_after(NOW), Some(1_796_601_600 * S));
        // Sunday as 7 and as 0: 2026-12-06 00:00.
        assert_eq!(cron("0 0 * * 7").next_after(NOW), Some(1_796_515_200 * S));
        assert_eq!(cron("0 0 * * 0").next_after(NOW), Some(1_796_515_200 * S));
        // New year: 2027-01-01 00:00.
        assert_eq!(cron("@yearly").next_after(NOW), Some(1_798_761_600 * S));
        // 29 February: 2028-02-29 12:00.
        assert_eq!(cron("0 12 29 2 *").next_after(NOW), Some(1_835_438_400 * S));
        // Day-of-month OR day-of-week when both are given: the 4th (Friday) comes before Monday the 7th.
        assert_eq!(cron("0 0 4 * 1").next_after(NOW), Some(1_796_342_400 * S));
        // Lists, ranges and steps: 18:00 is in 9-17/4? no (9,13,17), so 2026-12-03 09:00.
        assert_eq!(cron("0 9-17/4 * * *").next_after(NOW), Some(1_796_288_400 * S));
        assert_eq!(cron("0,53 17 * * *").next_after(NOW), Some(1_796_233_980 * S));
        // A day that never comes.
        assert_eq!(cron("0 0 30 2 *").next_after(NOW), None);
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for (f, expr, why) in [
            (0, "", "at least 1 second"),
            (-5, "", "at least 1 second"),
            (10, "* * * * *", "not both"),
            (0, "* * * *", "5 fields"),
            (0, "60 * * * *", "outside 0-59"),
            (0, "* 24 * * *", "outside 0-23"),
            (0, "* * 0 * *", "outside 1-31"),
            (0, "* * * 13 *", "outside 1-12"),
            (0, "* * * * 8", "outside 0-7"),
            (0, "*/0 * * * *", "at least 1"),
            (0, "5-1 * * * *", "backwards"),
            (0, "x * * * *", "not a number"),
        ] {
            let error = Schedule::new(f, expr).expect_err(expr).to_string();
            assert!(error.contains(why), "{f} {expr:?}: {error}");
        }
    }

    #[test]
    fn civil_dates_round_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(21_243), (2028, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
