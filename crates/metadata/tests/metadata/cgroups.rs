//! Real cgroup v2 directories with the paths containerd, CRI-O and Docker give a pod's container (systemd
//! and cgroupfs drivers, each QoS class), under a parent this test owns and removes; a process is moved into
//! each, and its UPID resolved to its pod in the replayed cluster's state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use loupe_metadata::NodeMetadata;
use loupe_metadata::cgroup::{CgroupResolver, QosClass, Runtime};

use crate::apiserver::{TempDir, watched_cluster};

pub const A: &str = "5f0c1a2e-3b4d-4c6e-8f90-a1b2c3d4e5f6";
pub const B: &str = "6a1d2b3f-4c5e-4d7f-9a01-b2c3d4e5f607";
pub const C: &str = "7b2e3c40-5d6f-4e80-ab12-c3d4e5f60718";
pub const D: &str = "8c3f4d51-6e70-4f91-bc23-d4e5f6071829";
/// The container ids the recorded pods' statuses give.
pub const CID_A: &str = "4186c210cf0247e259df2667ba2b3c3978cb90acf9106bef561eb1f10452e77b";
pub const CID_C: &str = "4b9091fd8688eb59953b37a231ab6d86d6f726f6a532878fb1ae37af185450d7";
pub const CID_D: &str = "0f5587920ecbab3da1ae212c9acbe0bb4884d58a1559d2da1286df96345e5b8b";
/// Pod B's container: not in its recorded status (it was deleted), so only the cgroup's pod UID finds it.
pub const CID_B: &str = "9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e";

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host).
pub fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    let mount = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    });
    mount.expect("cgroup v2 is mounted")
}

/// Test-owned cgroups holding one process each; the processes are killed and the directories removed on drop.
pub struct Cgroups {
    parent: PathBuf,
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl Cgroups {
    pub fn new(tag: &str) -> Self {
        let parent = cgroup2_root().join(format!("loupe-metadata-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&parent).expect("the test's cgroup (needs root)");
        Cgroups { parent, dirs: Vec::new(), children: Vec::new() }
    }

    /// Starts a process in cgroup `path` (relative to the test's parent) and returns its UPID.
    pub fn spawn_in(&mut self, path: &str) -> String {
        let dir = self.parent.join(path);
        std::fs::create_dir_all(&dir).expect("cgroup dir");
        let mut d = dir.as_path();
        while d != self.parent {
            if !self.dirs.iter().any(|x| x == d) {
                self.dirs.push(d.to_owned());
            }
            d = d.parent().expect("under the parent");
        }
        let child = Command::new("sleep").arg("120").spawn().expect("sleep");
        let pid = child.id();
        self.children.push(child);
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("move into the cgroup");
        let ticks = CgroupResolver::default().start_ticks(pid).expect("start time");
        format!("0:{pid}:{ticks}")
    }

    /// Kills every process (they stay known by UPID to whoever resolved them).
    pub fn kill_all(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn parent(&self) -> &Path {
        &self.parent
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.kill_all();
        // Deepest first: a cgroup is removed only when empty of processes and children.
        self.dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in self.dirs.iter().chain(std::iter::once(&self.parent)) {
            if let Err(e) = std::fs::remove_dir(d) {
                eprintln!("could not remove cgroup {}: {e}", d.display());
            }
        }
    }
}

fn under(uid: &str) -> String {
    uid.replace('-', "_")
}

/// The four layouts: containerd (systemd, Burstable), CRI-O (systemd, BestEffort), Docker (systemd,
/// Guaranteed), and the cgroupfs driver's plain directories for the pod the relist deleted.
pub fn layouts() -> [(&'static str, String); 4] {
    [
        (
            A,
            format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID_A}.scope",
                under(A)
            ),
        ),
        (
            C,
            format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{CID_C}.scope",
                under(C)
            ),
        ),
        (D, format!("kubepods.slice/kubepods-pod{}.slice/docker-{CID_D}.scope", under(D))),
        (B, format!("kubepods/burstable/pod{B}/{CID_B}")),
    ]
}

#[tokio::test]
async fn processes_in_pod_cgroups_resolve_to_their_pods() {
    let dir = TempDir::new("cgroups");
    let (_api, hub, _stats, tasks) = watched_cluster(&dir.0).await;
    let mut cgroups = Cgroups::new("resolve");
    let upids: Vec<String> = layouts().iter().map(|(_, path)| cgroups.spawn_in(path)).collect();
    let host = cgroups.spawn_in("host.scope");

    // The resolver, straight from /proc/PID/cgroup.
    let resolver = CgroupResolver::default();
    let pid = |upid: &str| upid.split(':').nth(1).and_then(|p| p.parse::<u32>().ok()).expect("pid");
    let expect = [
        (A, CID_A, QosClass::Burstable, Runtime::Containerd),
        (C, CID_C, QosClass::BestEffort, Runtime::CriO),
        (D, CID_D, QosClass::Guaranteed, Runtime::Docker),
        (B, CID_B, QosClass::Burstable, Runtime::Unknown),
    ];
    for (upid, (uid, cid, qos, rt)) in upids.iter().zip(expect) {
        let r = resolver.resolve(pid(upid)).unwrap_or_else(|| panic!("{upid} in {}", cgroups.parent().display()));
        assert_eq!(r.pod_uid.as_deref(), Some(uid));
        assert_eq!(r.container_id.as_deref(), Some(cid));
        assert_eq!((r.qos, r.runtime), (Some(qos), Some(rt)));
    }
    assert_eq!(resolver.resolve(pid(&host)), None, "a process outside any pod");

    let meta = NodeMetadata::new(hub);
    let ask = |func: &str, upid: &str| meta.answer(func, upid);
    let (a, c, d, b) = (&upids[0], &upids[1], &upids[2], &upids[3]);
    assert_eq!(ask("upid_to_pod_name", a), "shop/cart-7d9-aaaa");
    assert_eq!(ask("upid_to_namespace", a), "shop");
    assert_eq!(ask("upid_to_service_name", a), "shop/cart");
    assert_eq!(ask("upid_to_container_name", a), "app");
    assert_eq!(ask("upid_to_container_id", a), CID_A);
    assert_eq!(ask("upid_to_deployment_name", a), "shop/cart");
    assert_eq!(ask("upid_to_replicaset_name", a), "shop/cart-7d9");
    assert_eq!(ask("upid_to_pod_name", c), "shop/cart-7d9-cccc");
    assert_eq!(ask("upid_to_service_name", c), "shop/cart");
    assert_eq!(ask("upid_to_pod_name", d), "billing/pay-5f8-dddd");
    assert_eq!(ask("upid_to_namespace", d), "billing");
    assert_eq!(ask("upid_to_service_name", d), "billing/pay");
    assert_eq!(ask("upid_to_deployment_name", d), "billing/pay");
    // The deleted pod still answers for its process's rows.
    assert_eq!(ask("upid_to_pod_name", b), "shop/cart-7d9-bbbb");
    for f in ["upid_to_pod_name", "upid_to_namespace", "upid_to_service_name", "upid_to_container_id"] {
        assert_eq!(ask(f, &host), "", "{f} of a host process");
    }
    // A UPID whose pid now runs another process (another start time) is not that process.
    let (_, p, t) = (0, pid(a), a.rsplit(':').next().unwrap_or_default());
    let reused = format!("0:{p}:{}", t.parse::<u64>().unwrap_or(0) + 1);
    assert_eq!(ask("upid_to_pod_name", &reused), "");

    // Gone processes keep their pods: they were resolved while they ran.
    cgroups.kill_all();
    assert_eq!(ask("upid_to_pod_name", a), "shop/cart-7d9-aaaa");
    assert_eq!(ask("upid_to_service_name", d), "billing/pay");
    drop(cgroups);
    for t in tasks {
        t.abort();
    }
}
