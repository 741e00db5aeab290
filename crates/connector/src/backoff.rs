//! Reconnect delays: exponential backoff with jitter, so a fleet of viziers cut off together does not come
//! back in lockstep. Owns the arithmetic only.

use std::time::Duration;

/// Delays `initial`, `2·initial`, ... up to `max`, each shortened by a random part of up to half of it.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` (at least 1 ms) and growing to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff { initial, max: max.max(initial), current: initial }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let mut b = [0u8; 4];
        let r = if getrandom::fill(&mut b).is_ok() { u32::from_le_bytes(b) } else { u32::MAX / 2 };
        // Equal jitter: between half and all of the step.
        let jitter = base.mul_f64(f64::from(r) / f64::from(u32::MAX) / 2.0);
        base - jitter
    }

    /// Back to the first delay (after a connection that worked).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_at_most_half_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let steps = [100, 200, 400, 700, 700];
        let mut delays = Vec::new();
        for step in steps {
            let d = b.next_delay();
            assert!(d <= Duration::from_millis(step) && d >= Duration::from_millis(step / 2), "{d:?} for {step}");
            delays.push(d);
        }
        // Jitter: 64 draws of the same step are not all equal.
        let mut same = Backoff::new(Duration::from_millis(1000), Duration::from_millis(1000));
        let first = same.next_delay();
        assert!((0..64).any(|_| same.next_delay() != first));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
