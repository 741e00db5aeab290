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
//!
//! Text in, names out: never panics (fuzzed), reads nothing itself (`loupe-metadata` reads `/proc/PID/cgroup`).

/// The QoS class of a pod, read from where the kubelet put its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    /// Right under `kubepods`.
    Guaranteed,
    /// Under `kubepods-burstable` / `burstable`.
    Burstable,
    /// Under `kubepods-besteffort` / `besteffort`.
    BestEffort,
}

/// The runtime that named a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
