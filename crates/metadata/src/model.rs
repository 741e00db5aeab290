//! The Kubernetes state a vizier knows: pods, services (with their endpoints), namespaces, nodes, replica
//! sets and deployments, as plain records, with the indexes the metadata functions read (IP → pod, pod →
//! services, name → object) and a bounded history of deleted objects, so a row of a process whose pod is
//! gone still resolves.
//!
//! Names given to and returned by the lookups are `namespace/name`, as Pixie's are.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How many deleted objects are remembered (oldest forgotten first).
pub const DELETED_HISTORY: usize = 8192;

/// One owner reference of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRef {
    /// `ReplicaSet`, `Deployment`, `StatefulSet`, …
    pub kind: String,
    /// The owner's name (same namespace).
    pub name: String,
    /// The owner's UID.
    pub uid: String,
}

/// One container of a pod, from its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// The runtime's id, without the `containerd://` scheme.
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// `Running`, `Waiting`, `Terminated` or `Unknown`.
    pub state: String,
    /// The state's message.
    pub message: String,
    /// The state's reason.
    pub reason: String,
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Its UID.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The node it runs on ('' before scheduling).
    pub node: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    /// The status message.
    pub message: String,
    /// The status reason.
    pub reason: String,
    /// Whether its `Ready` condition is true.
    pub ready: bool,
    /// Its IPs (the first is `status.podIP`).
    pub ips: Vec<String>,
    /// Whether it shares the node's network (its IP is the node's, so not indexed).
    pub host_network: bool,
    /// Its owners.
    pub owners: Vec<OwnerRef>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its containers.
    pub containers: Vec<Container>,
    /// When it was created, Unix ns.
    pub start_ns: i64,
    /// When it was deleted, Unix ns (0 while it exists).
    pub stop_ns: i64,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Its UID.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its cluster IP ('' or `None` for headless).
    pub cluster_ip: String,
    /// Its external IPs.
    pub external_ips: Vec<String>,
    /// When it was created, Unix ns.
    pub start_ns: i64,
    /// When it was deleted, Unix ns (0 while it exists).
    pub stop_ns: i64,
}

/// The endpoints of a service: the pods behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The Endpoints object's UID.
    pub uid: String,
    /// Its name, the service's.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The UIDs of the pods its addresses point at (ready or not).
    pub pod_uids: Vec<String>,
}

/// A namespace, node, replica set or deployment: what the lookups need of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// Its UID.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Its namespace ('' for cluster-scoped kinds).
    pub namespace: String,
    /// Its owners (a replica set's deployment).
    pub owners: Vec<OwnerRef>,
}

/// One object of any watched kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Object {
    /// A pod.
    Pod(Pod),
    /// A service.
    Service(Service),
    /// A service's endpoints.
    Endpoints(Endpoints),
    /// A namespace.
    Namespace(Named),
    /// A node.
    Node(Named),
    /// A replica set.
    ReplicaSet(Named),
    /// A deployment.
    Deployment(Named),
}

/// The watched kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Pods.
    Pod,
    /// Services.
    Service,
    /// Endpoints.
    Endpoints,
    /// Namespaces.
    Namespace,
    /// Nodes.
    Node,
    /// Replica sets.
    ReplicaSet,
    /// Deployments.
    Deployment,
}

impl Kind {
    /// Every watched kind.
    pub const ALL: [Kind; 7] =
        [Kind::Namespace, Kind::Node, Kind::Deployment, Kind::ReplicaSet, Kind::Service, Kind::Endpoints, Kind::Pod];
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
            Object::Deployment(_) => Kind::Deployment,
        }
    }

    /// Its UID.
    pub fn uid(&self) -> &str {
        match self {
            Object::Pod(p) => &p.uid,
            Object::Service(s) => &s.uid,
            Object::Endpoints(e) => &e.uid,
            Object::Namespace(n) | Object::Node(n) | Object::ReplicaSet(n) | Object::Deployment(n) => &n.uid,
        }
    }
}

/// One change of the state, as the watcher applies it and the service sends it to PEMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Nearly every update is an upsert: boxing the object would add an allocation to each to save bytes on the
// rare delete.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    /// An object added or changed.
    Upsert(Object),
    /// An object deleted at `at_ns` (Unix ns).
    Delete {
        /// Its kind.
        kind: Kind,
        /// Its UID.
        uid: String,
        /// When, Unix ns.
        at_ns: i64,
    },
}

/// Every object, live and recently deleted, by kind and UID. Cloned whole as a snapshot for a new PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objects {
    /// Pods by UID (deleted ones have `stop_ns`).
    pub pods: HashMap<String, Pod>,
    /// Services by UID (deleted ones have `stop_ns`).
    pub services: HashMap<String, Service>,
    /// Endpoints by UID.
    pub endpoints: HashMap<String, Endpoints>,
    /// Namespaces by UID.
    pub namespaces: HashMap<String, Named>,
    /// Nodes by UID.
    pub nodes: HashMap<String, Named>,
    /// Replica sets by UID.
    pub replica_sets: HashMap<String, Named>,
    /// Deployments by UID.
    pub deployments: HashMap<String, Named>,
    /// Deleted pods and services, oldest first, to forget them past [`DELETED_HISTORY`].
    pub deleted: VecDeque<(Kind, String)>,
}

/// The state with its indexes. Build it with [`State::apply`]; read it with the lookups.
#[derive(Debug, Clone, Default)]
pub struct State {
    objects: Objects,
    /// `ns/name` → pod UIDs, newest last (a name is reused when a pod is recreated).
    pod_by_name: HashMap<String, Vec<String>>,
    /// IP → pod UIDs that held it, in the order they got it.
    pod_by_ip: HashMap<String, Vec<String>>,
    /// pod UID → the UIDs of the services whose endpoints name it.
    services_of_pod: HashMap<String, Vec<String>>,
    /// `ns/name` → service UIDs, newest last.
    service_by_name: HashMap<String, Vec<String>>,
    /// cluster IP → service UID.
    service_by_ip: HashMap<String, String>,
    /// container id → pod UID.
    pod_by_container: HashMap<String, String>,
    /// Changes applied since the indexes were built ([`State::apply_deferred`]).
    stale: bool,
}

fn full(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Several names as Pixie answers them: '' for none, the name for one, a JSON list for more.
fn one_or_list(names: Vec<String>) -> String {
    match names.len() {
        0 => String::new(),
        1 => names.into_iter().next().unwrap_or_default(),
        _ => serde_json::to_string(&names).unwrap_or_default(),
    }
}

impl State {
    /// A state holding `objects` (a snapshot), indexed.
    pub fn from_objects(objects: Objects) -> Self {
        let mut s = State { objects, ..State::default() };
        s.reindex();
        s
    }

    /// Every object (to send as a snapshot).
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The UIDs of the live objects of `kind` (a relist deletes the ones it no longer sees).
    pub fn live_uids(&self, kind: Kind) -> Vec<String> {
        let o = &self.objects;
        match kind {
            Kind::Pod => o.pods.values().filter(|p| p.stop_ns == 0).map(|p| p.uid.clone()).collect(),
            Kind::Service => o.services.values().filter(|s| s.stop_ns == 0).map(|s| s.uid.clone()).collect(),
            Kind::Endpoints => o.endpoints.keys().cloned().collect(),
            Kind::Namespace => o.namespaces.keys().cloned().collect(),
            Kind::Node => o.nodes.keys().cloned().collect(),
            Kind::ReplicaSet => o.replica_sets.keys().cloned().collect(),
            Kind::Deployment => o.deployments.keys().cloned().collect(),
        }
    }

    /// Applies one change.
    pub fn apply(&mut self, update: Update) {
        self.apply_all([update]);
    }

    /// Applies changes in order, indexing once at the end (a relist).
    pub fn apply_all(&mut self, updates: impl IntoIterator<Item = Update>) {
        self.apply_deferred(updates);
        self.reindex();
    }

    /// Applies changes without indexing: lookups are wrong until [`State::reindex_if_stale`]. A busy cluster
    /// sends many events between two queries; indexes are rebuilt whole (milliseconds for tens of thousands of
    /// objects), once, when the next query reads them.
    pub fn apply_deferred(&mut self, updates: impl IntoIterator<Item = Update>) {
        for u in updates {
            self.apply_unindexed(u);
        }
        self.stale = true;
    }

    /// Whether changes were applied since the indexes were built.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Rebuilds the indexes if changes were applied since.
    pub fn reindex_if_stale(&mut self) {
        if self.stale {
            self.reindex();
        }
    }

    fn apply_unindexed(&mut self, update: Update) {
        let o = &mut self.objects;
        match update {
            Update::Upsert(obj) => match obj {
                Object::Pod(p) => {
                    o.pods.insert(p.uid.clone(), p);
                }
                Object::Service(s) => {
                    o.services.insert(s.uid.clone(), s);
                }
                Object::Endpoints(e) => {
                    o.endpoints.insert(e.uid.clone(), e);
                }
                Object::Namespace(n) => {
                    o.namespaces.insert(n.uid.clone(), n);
                }
                Object::Node(n) => {
                    o.nodes.insert(n.uid.clone(), n);
                }
                Object::ReplicaSet(n) => {
                    o.replica_sets.insert(n.uid.clone(), n);
                }
                Object::Deployment(n) => {
                    o.deployments.insert(n.uid.clone(), n);
                }
            },
            Update::Delete { kind, uid, at_ns } => {
                match kind {
                    // Pods and services stay, stopped, for rows recorded while they ran.
                    Kind::Pod => {
                        if let Some(p) = o.pods.get_mut(&uid).filter(|p| p.stop_ns == 0) {
                            p.stop_ns = at_ns.max(p.start_ns);
                            o.deleted.push_back((kind, uid));
                        }
                    }
                    Kind::Service => {
                        if let Some(s) = o.services.get_mut(&uid).filter(|s| s.stop_ns == 0) {
                            s.stop_ns = at_ns.max(s.start_ns);
                            o.deleted.push_back((kind, uid));
                        }
                    }
                    Kind::Endpoints => drop(o.endpoints.remove(&uid)),
                    Kind::Namespace => drop(o.namespaces.remove(&uid)),
                    Kind::Node => drop(o.nodes.remove(&uid)),
                    Kind::ReplicaSet => drop(o.replica_sets.remove(&uid)),
                    Kind::Deployment => drop(o.deployments.remove(&uid)),
                }
                while o.deleted.len() > DELETED_HISTORY {
                    let Some((kind, uid)) = o.deleted.pop_front() else { break };
                    match kind {
                        Kind::Pod => drop(o.pods.remove(&uid)),
                        Kind::Service => drop(o.services.remove(&uid)),
                        _ => {}
                    }
                }
            }
        }
    }

    fn reindex(&mut self) {
        self.stale = false;
        let o = &self.objects;
        let mut pods: Vec<&Pod> = o.pods.values().collect();
        pods.sort_by(|a, b| (a.start_ns, &a.uid).cmp(&(b.start_ns, &b.uid)));
        self.pod_by_name.clear();
        self.pod_by_ip.clear();
        self.pod_by_container.clear();
        for p in &pods {
            self.pod_by_name.entry(full(&p.namespace, &p.name)).or_default().push(p.uid.clone());
            if !p.host_network {
                for ip in &p.ips {
                    self.pod_by_ip.entry(ip.clone()).or_default().push(p.uid.clone());
                }
            }
            for c in &p.containers {
                if !c.id.is_empty() {
                    self.pod_by_container.insert(c.id.clone(), p.uid.clone());
                }
            }
        }
        let mut services: Vec<&Service> = o.services.values().collect();
        services.sort_by(|a, b| (a.start_ns, &a.uid).cmp(&(b.start_ns, &b.uid)));
        self.service_by_name.clear();
        self.service_by_ip.clear();
        for s in &services {
            self.service_by_name.entry(full(&s.namespace, &s.name)).or_default().push(s.uid.clone());
            if s.stop_ns == 0 && !s.cluster_ip.is_empty() && s.cluster_ip != "None" {
                self.service_by_ip.insert(s.cluster_ip.clone(), s.uid.clone());
            }
        }
        self.services_of_pod.clear();
        for e in o.endpoints.values() {
            let Some(svc) = self.service_named(&full(&e.namespace, &e.name)).map(|s| s.uid.clone()) else {
                continue;
            };
            for pod in &e.pod_uids {
                let list = self.services_of_pod.entry(pod.clone()).or_default();
                if !list.contains(&svc) {
                    list.push(svc.clone());
                }
            }
        }
        for list in self.services_of_pod.values_mut() {
            list.sort();
        }
    }

    /// The pod with `uid` (live or remembered).
    pub fn pod(&self, uid: &str) -> Option<&Pod> {
        self.objects.pods.get(uid)
    }

    /// The pod named `ns/name`: the live one, else the last deleted.
    pub fn pod_named(&self, name: &str) -> Option<&Pod> {
        let uids = self.pod_by_name.get(name)?;
        let mut pods = uids.iter().filter_map(|u| self.pod(u));
        pods.clone().rev().find(|p| p.stop_ns == 0).or_else(|| pods.next_back())
    }

    /// The pod that held `ip` at `time_ns` (Unix ns), or the one holding it now (else the last) when
    /// `time_ns` is `None`.
    pub fn pod_by_ip_at(&self, ip: &str, time_ns: Option<i64>) -> Option<&Pod> {
        let pods: Vec<&Pod> = self.pod_by_ip.get(ip)?.iter().filter_map(|u| self.pod(u)).collect();
        match time_ns {
            Some(t) => pods.into_iter().rev().find(|p| p.start_ns <= t && (p.stop_ns == 0 || t < p.stop_ns)),
            None => pods.iter().rev().find(|p| p.stop_ns == 0).or(pods.last()).copied(),
        }
    }

    /// The pod with container `id`.
    pub fn pod_of_container(&self, id: &str) -> Option<&Pod> {
        self.pod(self.pod_by_container.get(id)?)
    }

    /// The service with `uid` (live or remembered).
    pub fn service(&self, uid: &str) -> Option<&Service> {
        self.objects.services.get(uid)
    }

    /// The service named `ns/name`: the live one, else the last deleted.
    pub fn service_named(&self, name: &str) -> Option<&Service> {
        let uids = self.service_by_name.get(name)?;
        let services: Vec<&Service> = uids.iter().filter_map(|u| self.service(u)).collect();
        services.iter().rev().find(|s| s.stop_ns == 0).or(services.last()).copied()
    }

    /// The services in front of pod `uid`.
    pub fn services_of(&self, pod_uid: &str) -> Vec<&Service> {
        self.services_of_pod.get(pod_uid).map_or_else(Vec::new, |l| l.iter().filter_map(|u| self.service(u)).collect())
    }

    /// The replica set and deployment that own pod `p` (either may be missing).
    pub fn owners_of(&self, p: &Pod) -> (Option<&Named>, Option<&Named>) {
        let rs = p.owners.iter().find(|o| o.kind == "ReplicaSet").and_then(|o| self.objects.replica_sets.get(&o.uid));
        let deploy = rs
            .and_then(|rs| rs.owners.iter().find(|o| o.kind == "Deployment"))
            .or_else(|| p.owners.iter().find(|o| o.kind == "Deployment"))
            .and_then(|o| self.objects.deployments.get(&o.uid));
        (rs, deploy)
    }

    /// The answer of the pod-level metadata function `func` (Pixie's name without `px.`) for pod `p`.
    pub fn pod_field(&self, func: PodField, p: &Pod) -> String {
        let services = || self.services_of(&p.uid);
        match func {
            PodField::Name => full(&p.namespace, &p.name),
            PodField::Id => p.uid.clone(),
            PodField::Namespace => p.namespace.clone(),
            PodField::Node => p.node.clone(),
            PodField::Ip => p.ips.first().cloned().unwrap_or_default(),
            PodField::ServiceName => one_or_list(services().iter().map(|s| full(&s.namespace, &s.name)).collect()),
            PodField::ServiceId => one_or_list(services().iter().map(|s| s.uid.clone()).collect()),
            PodField::ReplicaSetName => self.owners_of(p).0.map(|r| full(&r.namespace, &r.name)).unwrap_or_default(),
            PodField::ReplicaSetId => self.owners_of(p).0.map(|r| r.uid.clone()).unwrap_or_default(),
            PodField::DeploymentName => self.owners_of(p).1.map(|d| full(&d.namespace, &d.name)).unwrap_or_default(),
            PodField::DeploymentId => self.owners_of(p).1.map(|d| d.uid.clone()).unwrap_or_default(),
            PodField::Status => serde_json::json!({
                "phase": if p.stop_ns != 0 { "Terminated" } else { p.phase.as_str() },
                "message": p.message,
                "reason": p.reason,
                "ready": p.ready && p.stop_ns == 0,
            })
            .to_string(),
            PodField::OwnerReferences => serde_json::to_string(
                &p.owners
                    .iter()
                    .map(|o| serde_json::json!({"kind": o.kind, "name": o.name, "uid": o.uid}))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
            PodField::Labels => serde_json::to_string(&p.labels).unwrap_or_default(),
        }
    }
}

/// What a metadata function reads of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodField {
    /// `ns/name`.
    Name,
    /// The UID.
    Id,
    /// The namespace.
    Namespace,
    /// The node's name.
    Node,
    /// The first pod IP.
    Ip,
    /// `ns/svc`, or a JSON list of them.
    ServiceName,
    /// The service UID, or a JSON list of them.
    ServiceId,
    /// `ns/rs`.
    ReplicaSetName,
    /// The replica set's UID.
    ReplicaSetId,
    /// `ns/deploy`.
    DeploymentName,
    /// The deployment's UID.
    DeploymentId,
    /// `{"phase","message","reason","ready"}` as JSON.
    Status,
    /// The owner references as a JSON list.
    OwnerReferences,
    /// The labels as a JSON object.
    Labels,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, name: &str, ip: &str, start: i64) -> Pod {
        Pod {
            uid: uid.into(),
            name: name.into(),
            namespace: "shop".into(),
            node: "node-a".into(),
            phase: "Running".into(),
            message: String::new(),
            reason: String::new(),
            ready: true,
            ips: vec![ip.into()],
            host_network: false,
            owners: vec![OwnerRef { kind: "ReplicaSet".into(), name: "cart-7d9".into(), uid: "rs-1".into() }],
            labels: BTreeMap::new(),
            containers: vec![Container {
                id: format!("c-{uid}"),
                name: "app".into(),
                state: "Running".into(),
                message: String::new(),
                reason: String::new(),
            }],
            start_ns: start,
            stop_ns: 0,
        }
    }

    fn named(uid: &str, name: &str, owners: Vec<OwnerRef>) -> Named {
        Named { uid: uid.into(), name: name.into(), namespace: "shop".into(), owners }
    }

    #[test]
    fn lookups_follow_owners_endpoints_and_ip_history() {
        let mut s = State::default();
        s.apply(Update::Upsert(Object::Deployment(named("d-1", "cart", vec![]))));
        let to_deploy = vec![OwnerRef { kind: "Deployment".into(), name: "cart".into(), uid: "d-1".into() }];
        s.apply(Update::Upsert(Object::ReplicaSet(named("rs-1", "cart-7d9", to_deploy))));
        s.apply(Update::Upsert(Object::Pod(pod("p-1", "cart-7d9-aaaa", "10.0.0.5", 100))));
        for (uid, name) in [("s-1", "cart"), ("s-2", "cart-admin")] {
            s.apply(Update::Upsert(Object::Service(Service {
                uid: uid.into(),
                name: name.into(),
                namespace: "shop".into(),
                cluster_ip: format!("10.96.0.{}", name.len()),
                external_ips: vec![],
                start_ns: 50,
                stop_ns: 0,
            })));
        }
        let eps = |uid: &str, name: &str| Endpoints {
            uid: uid.into(),
            name: name.into(),
            namespace: "shop".into(),
            pod_uids: vec!["p-1".into()],
        };
        s.apply(Update::Upsert(Object::Endpoints(eps("e-1", "cart"))));
        let p = s.pod_named("shop/cart-7d9-aaaa").expect("by name").clone();
        assert_eq!(s.pod_field(PodField::ServiceName, &p), "shop/cart");
        assert_eq!(s.pod_field(PodField::DeploymentName, &p), "shop/cart");
        assert_eq!(s.pod_field(PodField::ReplicaSetId, &p), "rs-1");
        s.apply(Update::Upsert(Object::Endpoints(eps("e-2", "cart-admin"))));
        assert_eq!(s.pod_field(PodField::ServiceName, &p), r#"["shop/cart","shop/cart-admin"]"#);

        // The pod is deleted and its IP given to a new pod: rows keep their pod by time.
        s.apply(Update::Delete { kind: Kind::Pod, uid: "p-1".into(), at_ns: 200 });
        s.apply(Update::Upsert(Object::Pod(pod("p-2", "cart-7d9-bbbb", "10.0.0.5", 300))));
        assert_eq!(s.pod_by_ip_at("10.0.0.5", Some(150)).map(|p| p.uid.as_str()), Some("p-1"));
        assert_eq!(s.pod_by_ip_at("10.0.0.5", Some(250)).map(|p| p.uid.as_str()), None);
        assert_eq!(s.pod_by_ip_at("10.0.0.5", Some(350)).map(|p| p.uid.as_str()), Some("p-2"));
        assert_eq!(s.pod_by_ip_at("10.0.0.5", None).map(|p| p.uid.as_str()), Some("p-2"));
        let gone = s.pod("p-1").expect("remembered");
        assert!(s.pod_field(PodField::Status, gone).contains(r#""phase":"Terminated""#));
        assert_eq!(s.pod_of_container("c-p-1").map(|p| p.name.as_str()), Some("cart-7d9-aaaa"));
    }

    #[test]
    fn deleted_history_is_bounded() {
        let mut s = State::default();
        s.apply_all((0..(DELETED_HISTORY + 10)).flat_map(|i| {
            let uid = format!("p-{i}");
            [
                Update::Upsert(Object::Pod(pod(&uid, &uid, "10.0.0.1", 1))),
                Update::Delete { kind: Kind::Pod, uid, at_ns: 2 },
            ]
        }));
        assert_eq!(s.objects().pods.len(), DELETED_HISTORY);
        assert!(s.pod("p-0").is_none() && s.pod(&format!("p-{}", DELETED_HISTORY + 9)).is_some());
    }
}
