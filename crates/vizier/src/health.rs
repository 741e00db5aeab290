//! What the agent's probes say about its readiness: which eBPF probes attached and which did not.
//!
//! Owns the decision "ready or not, and why" for `/readyz` and the gRPC `HealthCheck`. Must not attach
//! anything or serve anything itself.

use loupe_collector::ProbeStatus;

/// The probes of one agent, as the collector reported them at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// `None` when the agent runs without tracing (`--no-trace`): nothing to attach, nothing failed.
    probes: Option<Vec<ProbeStatus>>,
}

impl ProbeReport {
    /// An agent that traces, with the collector's probe statuses.
    pub fn tracing(probes: &[ProbeStatus]) -> Self {
        ProbeReport { probes: Some(probes.to_vec()) }
    }

    /// An agent that does not trace.
    pub fn not_tracing() -> Self {
        ProbeReport { probes: None }
    }

    /// The probes that failed to attach, with why.
    pub fn failed(&self) -> Vec<&ProbeStatus> {
        self.probes.iter().flatten().filter(|p| !p.attached).collect()
    }

    /// `Ok` when every probe attached (or nothing is traced); else one line naming every failed probe.
    pub fn readiness(&self) -> Result<(), String> {
        let failed = self.failed();
        if failed.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = failed
            .iter()
            .map(|p| match &p.error {
                Some(e) => format!("{} ({e})", p.name),
                None => p.name.clone(),
            })
            .collect();
        Err(format!("{} of {} probes not attached: {}", failed.len(), self.len(), names.join(", ")))
    }

    fn len(&self) -> usize {
        self.probes.as_ref().map_or(0, Vec::len)
    }

    /// One line per probe, `name: ok` or `name: why`, for the health check.
    pub fn lines(&self) -> Vec<String> {
        self.probes
            .iter()
            .flatten()
            .map(|p| match &p.error {
                None if p.attached => format!("{}: ok", p.name),
                None => format!("{}: not attached", p.name),
                Some(e) => format!("{}: {e}", p.name),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(name: &str, error: Option<&str>) -> ProbeStatus {
        ProbeStatus { name: name.into(), attached: error.is_none(), error: error.map(Into::into) }
    }

    #[test]
    fn ready_only_when_every_probe_attached_or_nothing_is_traced() {
        assert_eq!(ProbeReport::not_tracing().readiness(), Ok(()));
        let all =
            ProbeReport::tracing(&[probe("syscalls/sys_enter_read", None), probe("syscalls/sys_exit_read", None)]);
        assert_eq!(all.readiness(), Ok(()));
        let some = ProbeReport::tracing(&[
            probe("syscalls/sys_enter_read", None),
            probe("syscalls/sys_enter_nope", Some("tracepoint not found")),
            probe("syscalls/sys_exit_nope", Some("tracepoint not found")),
        ]);
        assert_eq!(
            some.readiness(),
            Err("2 of 3 probes not attached: syscalls/sys_enter_nope (tracepoint not found), \
                 syscalls/sys_exit_nope (tracepoint not found)"
                .into())
        );
        assert_eq!(
            some.lines(),
            [
                "syscalls/sys_enter_read: ok",
                "syscalls/sys_enter_nope: tracepoint not found",
                "syscalls/sys_exit_nope: tracepoint not found"
            ]
        );
    }
}
