//! Which container and pod a process runs in: its `/proc/PID/cgroup` read here, the path parsed by
//! [`loupe_common::cgroup`] (containerd, CRI-O and Docker; systemd and cgroupfs drivers; every QoS class).

use std::path::{Path, PathBuf};

pub use loupe_common::cgroup::{ContainerRef, QosClass, Runtime, parse_cgroup_path};

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
