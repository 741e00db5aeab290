//! A process's cgroup path → the container and pod it runs in.
//!
//! The kubelet names a pod's cgroup after its UID and QoS class, and the container runtime names the
//! container's after its id; both with the systemd driver (`.slice`/`.scope` units, the UID's dashes
//! written as underscores) and the cgroupfs driver (plain directories):
//!
//! - containerd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
//!   or `/kubepods/burstable/pod<uid>/<id>`
//! - CRI-O: `…/kubepods-besteffort-pod<uid>.slice/crio-<id>.scope`
//! - Docker (dockershim, cri-dockerd): `…/kubepods-pod<uid>.slice/docker-<id>.scope`
//!
//! A Guaranteed pod sits right under `kubepods`, the others under their class. A container outside
//! Kubernetes (`/system.slice/docker-<id>.scope`) gives a container id and no pod.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The QoS class of a pod, read from where the kubelet put its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    /// Right under `kubepods`.
    Guaranteed,
    /// Under `kubepods-burstable` / `burstable`.
    Burstable,
    /// Under `kubepods-besteffort` / `besteffort`.
    BestEffort,
}

/// The runtime that named a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Runtime {
    /// `cri-containerd-<id>.scope`.
    Containerd,
    /// `crio-<id>.scope`.
    CriO,
    /// `docker-<id>.scope`.
    Docker,
    /// A bare id directory (the cgroupfs driver), runtime not named.
    Unknown,
}

/// What a cgroup path says about its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// The pod's UID (with dashes), when the path is a pod's.
    pub pod_uid: Option<String>,
    /// The container id (hex, as the runtime and the pod status name it, without `containerd://`).
    pub container_id: Option<String>,
    /// The pod's QoS class, when the path is a pod's.
    pub qos: Option<QosClass>,
    /// The runtime that named the container's cgroup.
    pub runtime: Option<Runtime>,
}

/// A pod UID (8-4-4-4-12 hex digits) from its cgroup spelling: dashes or (systemd) underscores.
fn pod_uid(text: &str) -> Option<String> {
    let uid = text.replace('_', "-");
    let ok = uid.len() == 36
        && uid
            .char_indices()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() });
    ok.then_some(uid)
}

/// A container id: hex digits, at least 12 (runtimes use 64).
fn container_id(text: &str) -> Option<String> {
    (text.len() >= 12 && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| text.to_owned())
}

/// The container and pod of one cgroup path (the part after `0::` in `/proc/PID/cgroup`), or `None` when the
/// path names neither (a host process). Never panics, whatever the text.
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let mut found = ContainerRef { pod_uid: None, container_id: None, qos: None, runtime: None };
    let mut under_kubepods = false;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        // QoS level (systemd, then cgroupfs).
        match part {
            "kubepods.slice" | "kubepods" => {
                under_kubepods = true;
                continue;
            }
            "kubepods-burstable.slice" | "burstable" if under_kubepods => {
                found.qos = Some(QosClass::Burstable);
                continue;
            }
            "kubepods-besteffort.slice" | "besteffort" if under_kubepods => {
                found.qos = Some(QosClass::BestEffort);
                continue;
            }
            _ => {}
        }
        // Pod level: `kubepods[-<qos>]-pod<uid>.slice` or `pod<uid>`.
        let pod = part
            .strip_suffix(".slice")
            .and_then(|s| s.rsplit_once("-pod"))
            .filter(|(prefix, _)| prefix.starts_with("kubepods"))
            .map(|(_, uid)| uid)
            .or_else(|| part.strip_prefix("pod").filter(|_| under_kubepods));
        if let Some(uid) = pod.and_then(pod_uid) {
            under_kubepods = true;
            found.pod_uid = Some(uid);
            if found.qos.is_none() {
                found.qos = Some(QosClass::Guaranteed);
            }
            continue;
        }
        // Container level.
        let scoped = part.strip_suffix(".scope").and_then(|unit| {
            if unit.starts_with("crio-conmon-") {
                // CRI-O's monitor process, not the container.
                return None;
            }
            [("cri-containerd-", Runtime::Containerd), ("crio-", Runtime::CriO), ("docker-", Runtime::Docker)]
                .into_iter()
                .find_map(|(prefix, rt)| unit.strip_prefix(prefix).and_then(container_id).map(|id| (id, rt)))
        });
        if let Some((id, rt)) = scoped {
            found.container_id = Some(id);
            found.runtime = Some(rt);
        } else if found.pod_uid.is_some()
            && let Some(id) = container_id(part)
        {
            found.container_id = Some(id);
            found.runtime = Some(Runtime::Unknown);
        }
    }
    (found.pod_uid.is_some() || found.container_id.is_some()).then_some(found)
}

/// Reads processes' cgroups from a proc file system (`/proc`, or another root in tests of the parser).
#[derive(Debug, Clone)]
pub struct CgroupResolver {
    proc_root: PathBuf,
}

impl Default for CgroupResolver {
    fn default() -> Self {
        CgroupResolver { proc_root: PathBuf::from("/proc") }
    }
}

impl CgroupResolver {
    /// A resolver reading `<proc_root>/<pid>/cgroup`.
    pub fn with_proc_root(proc_root: impl AsRef<Path>) -> Self {
        CgroupResolver { proc_root: proc_root.as_ref().to_owned() }
    }

    /// The container and pod of process `pid` now, or `None` for a host process or a pid that is gone.
    pub fn resolve(&self, pid: u32) -> Option<ContainerRef> {
        let text = std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        // v2 has one `0::<path>` line; under v1 every controller has its own, naming the same container.
        text.lines().filter_map(|l| l.splitn(3, ':').nth(2)).find_map(parse_cgroup_path)
    }

    /// The start time of `pid` in clock ticks since boot (field 22 of `stat`), to tell a pid reused.
    pub fn start_ticks(&self, pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0c3f5c2a-8d5e-4b7e-9a43-3f1d2c6b7e10";
    const ID: &str = "4f9d0d3b8c6a4e1f9b2a7c5d3e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";

    fn under(uid: &str) -> String {
        uid.replace('-', "_")
    }

    #[test]
    fn containerd_systemd_burstable() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            under(UID)
        );
        let r = parse_cgroup_path(&p).expect("a pod");
        assert_eq!(r.pod_uid.as_deref(), Some(UID));
        assert_eq!(r.container_id.as_deref(), Some(ID));
        assert_eq!(r.qos, Some(QosClass::Burstable));
        assert_eq!(r.runtime, Some(Runtime::Containerd));
    }

    #[test]
    fn crio_besteffort_and_guaranteed_docker() {
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{ID}.scope",
            under(UID)
        );
        let r = parse_cgroup_path(&p).expect("a pod");
        assert_eq!((r.qos, r.runtime), (Some(QosClass::BestEffort), Some(Runtime::CriO)));
        let p = format!("/kubepods.slice/kubepods-pod{}.slice/docker-{ID}.scope", under(UID));
        let r = parse_cgroup_path(&p).expect("a pod");
        assert_eq!((r.qos, r.runtime), (Some(QosClass::Guaranteed), Some(Runtime::Docker)));
        assert_eq!(r.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn cgroupfs_driver_with_dashes() {
        let r = parse_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{ID}")).expect("a pod");
        assert_eq!(r.pod_uid.as_deref(), Some(UID));
        assert_eq!(r.container_id.as_deref(), Some(ID));
        assert_eq!((r.qos, r.runtime), (Some(QosClass::Burstable), Some(Runtime::Unknown)));
        let r = parse_cgroup_path(&format!("/kubepods/pod{UID}/{ID}")).expect("a pod");
        assert_eq!(r.qos, Some(QosClass::Guaranteed));
    }

    #[test]
    fn pod_without_container_and_crio_monitor() {
        let r = parse_cgroup_path(&format!("/kubepods.slice/kubepods-pod{}.slice", under(UID))).expect("a pod");
        assert_eq!((r.pod_uid.as_deref(), r.container_id), (Some(UID), None));
        let p = format!("/kubepods.slice/kubepods-pod{}.slice/crio-conmon-{ID}.scope", under(UID));
        assert_eq!(parse_cgroup_path(&p).expect("the pod").container_id, None, "conmon is not the container");
    }

    #[test]
    fn host_processes_and_plain_docker() {
        for p in ["/", "/user.slice/user-0.slice/session-1.scope", "/system.slice/ssh.service", "", "/kubepods.slice"] {
            assert_eq!(parse_cgroup_path(p), None, "{p}");
        }
        let r = parse_cgroup_path(&format!("/system.slice/docker-{ID}.scope")).expect("a container");
        assert_eq!((r.pod_uid, r.container_id.as_deref()), (None, Some(ID)));
        // A bad UID is not a pod.
        assert_eq!(parse_cgroup_path("/kubepods.slice/kubepods-podnot_a_uid.slice"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_cgroup_path(&s);
        }

        #[test]
        fn never_panics_on_pathlike_text(parts in proptest::collection::vec("(kubepods|pod|crio-|docker-|cri-containerd-|[0-9a-f_-]{0,40}|\\.slice|\\.scope){1,4}", 0..8)) {
            let _ = parse_cgroup_path(&parts.join("/"));
        }
    }
}
