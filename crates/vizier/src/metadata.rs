//! The PEM's Kubernetes metadata: a local copy of the metadata service's state (followed over its stream
//! with the vizier's token) and this host's processes' cgroups, given to the engine as its
//! [`MetadataSource`]. Without a metadata service the copy stays empty: pod fields answer '', and a
//! process's container id still comes from its cgroup.

use std::sync::Arc;

use loupe_engine::MetadataSource;
use loupe_metadata::serve::FollowStats;
use loupe_metadata::{Hub, NodeMetadata};

/// The engine's view of a node's metadata.
#[derive(Debug, Clone)]
pub struct PemMetadata(pub Arc<NodeMetadata>);

impl PemMetadata {
    /// This host alone: no Kubernetes state.
    pub fn host_only() -> Self {
        PemMetadata(Arc::new(NodeMetadata::new(Hub::new())))
    }

    /// Follows the metadata service at `addr` (from a task on the current runtime, reconnecting for ever),
    /// sending `token`.
    pub fn follow(addr: impl std::fmt::Display, token: String) -> (Self, Arc<FollowStats>) {
        let addr = addr.to_string();
        let hub = Hub::new();
        let stats = Arc::new(FollowStats::default());
        tokio::spawn(loupe_metadata::serve::follow(addr, token, hub.clone(), stats.clone()));
        (PemMetadata(Arc::new(NodeMetadata::new(hub))), stats)
    }
}

impl MetadataSource for PemMetadata {
    fn answer(&self, func: &str, arg: &str) -> String {
        self.0.answer(func, arg)
    }

    fn pod_start_ns(&self, pod_name: &str) -> Option<i64> {
        self.0.pod_start_ns(pod_name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use loupe_engine::ExecOptions;
    use loupe_metadata::cgroup::CgroupResolver;
    use loupe_metadata::model::{Container, Endpoints, Named, Object, OwnerRef, Pod, Service, Update};
    use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};

    use super::*;
    use crate::{Pem, PemConfig};

    const TOKEN: &str = "metadata-token-0123456789abcdef";
    const POD: &str = "5f0c1a2e-3b4d-4c6e-8f90-a1b2c3d4e5f6";
    const CID: &str = "4186c210cf0247e259df2667ba2b3c3978cb90acf9106bef561eb1f10452e77b";

    /// A process in a real cgroup v2 directory (made under a parent this test owns), killed and the directories
    /// removed on drop.
    struct InCgroup {
        dirs: Vec<PathBuf>,
        child: Child,
        upid: String,
    }

    impl InCgroup {
        fn spawn(tag: &str, path: &str) -> Self {
            let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
            let root = mounts
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
                })
                .expect("cgroup v2 is mounted");
            let parent = root.join(format!("loupe-vizier-{tag}-{}", std::process::id()));
            let leaf = parent.join(path);
            std::fs::create_dir_all(&leaf).expect("cgroup (needs root)");
            let mut dirs: Vec<PathBuf> =
                leaf.ancestors().take_while(|d| d.starts_with(&parent)).map(PathBuf::from).collect();
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            let child = Command::new("sleep").arg("120").spawn().expect("sleep");
            std::fs::write(leaf.join("cgroup.procs"), child.id().to_string()).expect("move into the cgroup");
            let ticks = CgroupResolver::default().start_ticks(child.id()).expect("ticks");
            InCgroup { dirs, upid: format!("0:{}:{ticks}", child.id()), child }
        }
    }

    impl Drop for InCgroup {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            for d in &self.dirs {
                let _ = std::fs::remove_dir(d);
            }
        }
    }

    fn cluster() -> Vec<Update> {
        let named = |uid: &str, name: &str, owners| Named {
            uid: uid.into(),
            name: name.into(),
            namespace: "shop".into(),
            owners,
        };
        let owner =
            |kind: &str, name: &str, uid: &str| OwnerRef { kind: kind.into(), name: name.into(), uid: uid.into() };
        vec![
            Update::Upsert(Object::Deployment(named("d-1", "cart", vec![]))),
            Update::Upsert(Object::ReplicaSet(named("rs-1", "cart-7d9", vec![owner("Deployment", "cart", "d-1")]))),
            Update::Upsert(Object::Pod(Pod {
                uid: POD.into(),
                name: "cart-7d9-aaaa".into(),
                namespace: "shop".into(),
                node: "node-a".into(),
                phase: "Running".into(),
                message: String::new(),
                reason: String::new(),
                ready: true,
                ips: vec!["10.244.1.5".into()],
                host_network: false,
                owners: vec![owner("ReplicaSet", "cart-7d9", "rs-1")],
                labels: BTreeMap::new(),
                containers: vec![Container {
                    id: CID.into(),
                    name: "app".into(),
                    state: "Running".into(),
                    message: String::new(),
                    reason: String::new(),
                }],
                start_ns: 1,
                stop_ns: 0,
            })),
            Update::Upsert(Object::Service(Service {
                uid: "s-1".into(),
                name: "cart".into(),
                namespace: "shop".into(),
                cluster_ip: "10.96.12.34".into(),
                external_ips: vec![],
                start_ns: 1,
                stop_ns: 0,
            })),
            Update::Upsert(Object::Endpoints(Endpoints {
                uid: "e-1".into(),
                name: "cart".into(),
                namespace: "shop".into(),
                pod_uids: vec![POD.into()],
            })),
        ]
    }

    /// The metadata service's state reaches a PEM over the token-protected stream, and a PxL query's
    /// `ctx['pod']`, `ctx['service']`, `ctx['namespace']` name the pod of each row's process (a process in a
    /// containerd pod cgroup), '' for a host process, whose pid and command line still answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ctx_names_the_pod_of_each_rows_process() {
        let service_hub = Hub::new();
        service_hub.apply(cluster());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = loupe_metadata::serve::router(service_hub, TOKEN);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let mut pem = Pem::start(PemConfig { collector: None, ..PemConfig::default() }).expect("pem");
        let (metadata, stats) = PemMetadata::follow(addr, TOKEN.into());
        pem.set_metadata(metadata);
        let start = Instant::now();
        while stats.snapshots.load(Ordering::Relaxed) == 0 && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stats.snapshots.load(Ordering::Relaxed), 1, "the PEM followed the service");

        let in_pod = InCgroup::spawn(
            "ctx",
            &format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
                POD.replace('-', "_")
            ),
        );
        let on_host = InCgroup::spawn("ctx-host", "host.scope");
        let now = loupe_common::time::now_unix_ns();
        let mut b = HttpEventsBuilder::new();
        for (i, upid) in [&in_pod.upid, &on_host.upid].into_iter().enumerate() {
            b.append(&HttpEventRow {
                time_ns: now - 1_000_000 + i as i64,
                upid: upid.clone(),
                remote_addr: "10.244.1.5".into(),
                req_method: "GET".into(),
                req_path: "/cart".into(),
                resp_status: 200,
                ..HttpEventRow::default()
            });
        }
        pem.store().table("http_events").expect("table").append(b.finish().expect("batch")).expect("append");

        let script = "import px\n\
            df = px.DataFrame('http_events', start_time='-5m')\n\
            df.pod = df.ctx['pod']\n\
            df.service = df.ctx['service']\n\
            df.namespace = df.ctx['namespace']\n\
            df.container = df.ctx['container']\n\
            df.deployment = df.ctx['deployment']\n\
            df.pid = df.ctx['pid']\n\
            df.cmd = df.ctx['cmdline']\n\
            df.remote_pod = px.pod_id_to_pod_name(px.ip_to_pod_id(df.remote_addr))\n\
            df.status = px.pod_name_to_status(df.pod)\n\
            px.display(df[['time_', 'pod', 'service', 'namespace', 'container', 'deployment', 'pid', 'cmd', 'remote_pod', 'status']])\n";
        let engine = pem.engine();
        let program = loupe_pxl::compile(script, &engine.catalog(), &loupe_pxl::CompileOptions { now_ns: now })
            .expect("compiles");
        let out = engine.execute_program(&program, &ExecOptions::default()).await.expect("runs");
        let batch = arrow::compute::concat_batches(&out[0].schema, &out[0].batches).expect("one batch");
        assert_eq!(batch.num_rows(), 2);
        let text = |name: &str, row: usize| {
            let col = batch.column_by_name(name).unwrap_or_else(|| panic!("{name}"));
            col.as_string::<i32>().value(row).to_owned()
        };
        let pid = |row: usize| batch.column_by_name("pid").expect("pid").as_primitive::<Int64Type>().value(row);
        // Rows in time order: the pod's process first.
        assert_eq!(text("pod", 0), "shop/cart-7d9-aaaa");
        assert_eq!(text("service", 0), "shop/cart");
        assert_eq!(text("namespace", 0), "shop");
        assert_eq!(text("container", 0), "app");
        assert_eq!(text("deployment", 0), "shop/cart");
        assert_eq!(pid(0), i64::from(in_pod.child.id()));
        assert_eq!(text("cmd", 0), "sleep 120");
        assert!(text("status", 0).contains(r#""phase":"Running""#), "{}", text("status", 0));
        for col in ["pod", "service", "namespace", "container", "deployment"] {
            assert_eq!(text(col, 1), "", "{col} of a host process");
        }
        assert_eq!(pid(1), i64::from(on_host.child.id()));
        assert_eq!(text("remote_pod", 1), "shop/cart-7d9-aaaa", "the remote IP is the pod's");
        assert!(!batch.column_by_name("pod").expect("pod").is_null(1));
        server.abort();
    }
}
