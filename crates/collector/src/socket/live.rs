//! What the socket tracer may change while it runs, without reloading the BPF programs: the fraction of
//! new connections traced (sampling) and which protocols are parsed. The agent's configuration from the
//! query broker sets them; the tracker reads them when it decides a connection's protocol and on every
//! later piece, so a disabled protocol stops producing rows on connections already open too.
//!
//! Owns the settings' shared form and their names; must not touch the kernel (the BPF side keeps sending
//! the bytes of a disabled protocol's connections, which user space then drops unparsed).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::port_protocols;
use super::protocols::PROTOCOLS;

/// Parts per million in a whole: every connection traced.
const WHOLE: u32 = 1_000_000;

/// The live settings, shared between the tracker's thread and whoever applies a new configuration.
#[derive(Debug)]
pub struct LiveSettings {
    /// Connections traced per million new ones.
    sample_ppm: AtomicU32,
    /// Bit `i` set: `PROTOCOLS[i]` is not parsed.
    disabled: AtomicU64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings { sample_ppm: AtomicU32::new(WHOLE), disabled: AtomicU64::new(0) }
    }
}

/// A protocol name no parser answers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}` (one of: {known})", known = port_protocols::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownProtocol(pub String);

impl LiveSettings {
    /// Traces `fraction` (0 to 1, clamped; NaN counts as 1) of new connections from now on.
    pub fn set_sampling(&self, fraction: f64) {
        let ppm = if fraction.is_nan() { WHOLE } else { (fraction.clamp(0.0, 1.0) * f64::from(WHOLE)).round() as u32 };
        self.sample_ppm.store(ppm, Ordering::Relaxed);
    }

    /// The fraction of new connections traced.
    pub fn sampling(&self) -> f64 {
        f64::from(self.sample_ppm.load(Ordering::Relaxed)) / f64::from(WHOLE)
    }

    /// Parses only the protocols not named in `disabled` (names as `--protocol-port` takes them: `http`,
    /// `http2`, `grpc`, `redis`, ...), from now on; nothing changes when a name is unknown.
    pub fn set_disabled<'a>(&self, disabled: impl IntoIterator<Item = &'a str>) -> Result<(), UnknownProtocol> {
        let mut mask = 0u64;
        for name in disabled {
            let parser = port_protocols::parser_name(name).ok_or_else(|| UnknownProtocol(name.to_string()))?;
            if let Some(i) = PROTOCOLS.iter().position(|p| p.name() == parser) {
                mask |= 1 << i;
            }
        }
        self.disabled.store(mask, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `PROTOCOLS[protocol]` is parsed now.
    pub(crate) fn enabled(&self, protocol: usize) -> bool {
        protocol >= 64 || self.disabled.load(Ordering::Relaxed) & (1 << protocol) == 0
    }

    /// Whether a new connection, known by `key`, is in the sample. The same key always gets the same
    /// answer at one rate, so a connection's two directions agree.
    pub(crate) fn sampled(&self, key: impl Hash) -> bool {
        let ppm = self.sample_ppm.load(Ordering::Relaxed);
        if ppm >= WHOLE {
            return true;
        }
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % u64::from(WHOLE)) < u64::from(ppm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_switch_by_their_flag_names_and_sampling_keeps_its_share() {
        let live = LiveSettings::default();
        let http1 = PROTOCOLS.iter().position(|p| p.name() == "http1").expect("http1");
        let redis = PROTOCOLS.iter().position(|p| p.name() == "redis").expect("redis");
        assert!(live.enabled(http1) && live.enabled(redis));
        live.set_disabled(["http", "redis"]).expect("known names");
        assert!(!live.enabled(http1) && !live.enabled(redis));
        assert_eq!(live.set_disabled(["gopher"]), Err(UnknownProtocol("gopher".into())));
        assert!(!live.enabled(http1), "an unknown name changes nothing");
        live.set_disabled([]).expect("none");
        assert!(live.enabled(http1));

        assert!((0..1000).all(|k| live.sampled(k)));
        live.set_sampling(0.25);
        let kept = (0..100_000u64).filter(|k| live.sampled(k)).count();
        assert!((23_000..27_000).contains(&kept), "{kept} of 100,000 kept at 25%");
        assert_eq!(live.sampled(42u64), live.sampled(42u64));
        live.set_sampling(0.0);
        assert!(!(0..1000).any(|k| live.sampled(k)));
        live.set_sampling(f64::NAN);
        assert_eq!(live.sampling(), 1.0);
    }
}
