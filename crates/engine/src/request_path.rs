//! Request paths as endpoints, as Pixie's endpoint scripts use them: `px._match_endpoint`, the
//! aggregate `px._build_request_path_clusters` and `px._predict_request_path_cluster`.
//!
//! A path is its components between `/`, without the query string, a leading `/` optional (`a/b` is
//! `/a/b`); an endpoint is a path whose `*` components stand for any one component. A clustering
//! ([`Clustering`]) groups paths of one depth that agree on at least half their components; a
//! cluster's endpoint (its centroid) has `*` where its paths differ, and until it has seen more than
//! [`MIN_CARDINALITY`] distinct paths each one stands for itself. Its JSON is Pixie's
//! (`[{"c":[components],"m":[[components],...]},...]`), so a partial clustering travels between
//! agents as text and merges like Pixie's. Must not know tables or plans: this is string logic and the
//! UDFs over it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

/// The component standing for any one component.
pub(crate) const ANY: &str = "*";

/// The components of `path`: up to its query string, without one leading `/`.
pub(crate) fn components(path: &str) -> std::str::Split<'_, char> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// Whether `path` has as many components as `endpoint` and equals it wherever `endpoint` is not `*`.
pub(crate) fn matches(path: &str, endpoint: &str) -> bool {
    let (mut p, mut e) = (components(path), components(endpoint));
    loop {
        match (p.next(), e.next()) {
            (None, None) => return true,
            (Some(pc), Some(ec)) if ec == ANY || pc == ec => {}
            _ => return false,
        }
    }
}

/// Distinct paths a cluster keeps before its centroid stands for all of them (Pixie's default).
pub(crate) const MIN_CARDINALITY: usize = 5;
/// Share of components a path must agree on with a cluster's centroid to join it.
const THRESHOLD: f64 = 0.5;
/// Most clusters one clustering holds: past it a path joins the closest cluster of its depth, however
/// far, or is left out when there is none, so a stream of unrelated paths cannot grow one without end.
pub(crate) const MAX_CLUSTERS: usize = 1024;
/// Longest path text a clustering keeps (longer ones are cut there before splitting).
const MAX_PATH_BYTES: usize = 1024;

type Path = Vec<String>;

fn parse(path: &str) -> Path {
    let cut = path.get(..MAX_PATH_BYTES.min(path.len())).unwrap_or(path);
    let cut = if cut.len() < path.len() {
        // Back to a character boundary.
        let mut end = cut.len();
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.get(..end).unwrap_or_default()
    } else {
        cut
    };
    components(cut).map(str::to_string).collect()
}

fn to_text(path: &[String]) -> String {
    format!("/{}", path.join("/"))
}

/// Components `a` and `b` (of one depth) share, `*` aside, over their depth.
fn similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let agree = a.iter().zip(b).filter(|(x, y)| *x != ANY && *y != ANY && x == y).count();
    agree as f64 / a.len() as f64
}

/// Paths of one depth close enough to share an endpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cluster {
    /// The endpoint: `*` wherever its paths differ.
    #[serde(rename = "c")]
    centroid: Path,
    /// Its distinct paths while there are at most [`MIN_CARDINALITY`]; empty once there were more.
    #[serde(rename = "m")]
    members: BTreeSet<Path>,
}

impl Cluster {
    fn single(path: Path) -> Self {
        Cluster { centroid: path.clone(), members: BTreeSet::from([path]) }
    }

    fn merge(&mut self, other: &Cluster) {
        for (mine, theirs) in self.centroid.iter_mut().zip(&other.centroid) {
            if mine != theirs {
                *mine = ANY.to_string();
            }
        }
        if self.members.is_empty() || other.members.is_empty() {
            self.members.clear();
        } else {
            self.members.extend(other.members.iter().cloned());
            if self.members.len() > MIN_CARDINALITY {
                self.members.clear();
            }
        }
    }
}

/// Request paths grouped into endpoints (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Clustering {
    clusters: Vec<Cluster>,
    by_depth: HashMap<usize, Vec<usize>>,
}

impl Clustering {
    fn closest(&self, path: &[String]) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for &i in self.by_depth.get(&path.len())? {
            let s = self.clusters.get(i).map_or(0.0, |c| similarity(&c.centroid, path));
            if s > best.map_or(0.0, |(_, b)| b) {
                best = Some((i, s));
            }
        }
        best
    }

    fn push(&mut self, cluster: Cluster) {
        self.by_depth.entry(cluster.centroid.len()).or_default().push(self.clusters.len());
        self.clusters.push(cluster);
    }

    fn update(&mut self, cluster: Cluster) {
        match self.closest(&cluster.centroid) {
            Some((i, s)) if s >= THRESHOLD || self.clusters.len() >= MAX_CLUSTERS => {
                if let Some(c) = self.clusters.get_mut(i) {
                    c.merge(&cluster);
                }
            }
            _ if self.clusters.len() >= MAX_CLUSTERS => {}
            _ => self.push(cluster),
        }
    }

    /// Adds one request path.
    pub(crate) fn add(&mut self, path: &str) {
        self.update(Cluster::single(parse(path)));
    }

    /// Adds another clustering: its settled clusters, then every path still standing for itself on
    /// either side, one at a time (so they meet the merged clusters as single paths would).
    pub(crate) fn merge(&mut self, other: Clustering) {
        let mut singles = Vec::new();
        let mine = std::mem::take(&mut self.clusters);
        self.by_depth.clear();
        for c in mine {
            if c.members.is_empty() {
                self.push(c);
            } else {
                singles.extend(c.members);
            }
        }
        for c in other.clusters {
            if c.members.is_empty() {
                self.update(c);
            } else {
                singles.extend(c.members);
            }
        }
        for p in singles {
            self.update(Cluster::single(p));
        }
    }

    /// The endpoint of `path`: itself while its cluster keeps its members, else the cluster's centroid;
    /// `path` unchanged when no cluster of its depth shares a component with it.
    pub(crate) fn predict(&self, path: &str) -> String {
        let p = parse(path);
        match self.closest(&p).and_then(|(i, _)| self.clusters.get(i)) {
            Some(c) if !c.members.contains(&p) => to_text(&c.centroid),
            _ => to_text(&p),
        }
    }

    /// Pixie's JSON form.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(&self.clusters).unwrap_or_else(|_| "[]".to_string())
    }

    /// From Pixie's JSON form; `None` when it is not one.
    pub(crate) fn from_json(json: &str) -> Option<Clustering> {
        let clusters: Vec<Cluster> = serde_json::from_str(json).ok()?;
        let mut out = Clustering::default();
        for c in clusters.into_iter().take(MAX_CLUSTERS) {
            out.push(c);
        }
        Some(out)
    }
}

/// What a `px__build_request_path_clusters` aggregate reads: request paths, or partial clusterings (JSON)
/// that agents computed over their own rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClusterInput {
    Paths,
    Clusterings,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BuildClusters {
    input: ClusterInput,
    signature: Signature,
}

/// `px._build_request_path_clusters`: the clustering (JSON) of its input's paths or partial clusterings.
pub(crate) fn build_clusters(input: ClusterInput) -> AggregateUDF {
    AggregateUDF::from(BuildClusters {
        input,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })
}

impl AggregateUDFImpl for BuildClusters {
    fn name(&self) -> &str {
        match self.input {
            ClusterInput::Paths => "px__build_request_path_clusters",
            ClusterInput::Clusterings => "px__build_request_path_clusters_merge",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ClusterAccumulator { input: self.input, clustering: Clustering::default() }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[clusters]", args.name), DataType::Utf8, true))])
    }
}

#[derive(Debug)]
struct ClusterAccumulator {
    input: ClusterInput,
    clustering: Clustering,
}

fn strings(values: &[ArrayRef]) -> Result<&StringArray> {
    match values.first().and_then(|a| a.as_string_opt::<i32>()) {
        Some(a) => Ok(a),
        None => exec_err!("request path clustering takes one STRING argument"),
    }
}

impl Accumulator for ClusterAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.input == ClusterInput::Clusterings {
            return self.merge_batch(values);
        }
        for path in strings(values)?.iter().flatten() {
            self.clustering.add(path);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for json in strings(states)?.iter().flatten() {
            match Clustering::from_json(json) {
                Some(c) => self.clustering.merge(c),
                None => return exec_err!("corrupt request path clustering state"),
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Utf8(Some(self.clustering.to_json()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(self.clustering.to_json())))
    }

    fn size(&self) -> usize {
        let paths: usize = self
            .clustering
            .clusters
            .iter()
            .map(|c| c.centroid.iter().chain(c.members.iter().flatten()).map(|s| s.len() + 24).sum::<usize>())
            .sum();
        std::mem::size_of_val(self) + paths
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PredictCluster {
    signature: Signature,
}

/// The shared `px__predict_request_path_cluster` UDF.
pub(crate) fn predict_cluster() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(PredictCluster {
            signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for PredictCluster {
    fn name(&self) -> &str {
        "px__predict_request_path_cluster"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
        let [path, clustering] = arrays.as_slice() else {
            return exec_err!("px._predict_request_path_cluster takes 2 arguments");
        };
        let (path, clustering) = (path.as_string::<i32>(), clustering.as_string::<i32>());
        // A clustering is usually one value joined to every row: parsed once per distinct text.
        let mut parsed: Option<(&str, Option<Clustering>)> = None;
        let out: StringArray = (0..n)
            .map(|i| {
                if path.is_null(i) || clustering.is_null(i) {
                    return None;
                }
                let json = clustering.value(i);
                if parsed.as_ref().is_none_or(|(text, _)| *text != json) {
                    parsed = Some((json, Clustering::from_json(json)));
                }
                // Not a clustering: the path stands for itself.
                Some(match parsed.as_ref().and_then(|(_, c)| c.as_ref()) {
                    Some(c) => c.predict(path.value(i)),
                    None => to_text(&parse(path.value(i))),
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MatchEndpoint {
    signature: Signature,
}

/// The shared `px__match_endpoint` UDF.
pub(crate) fn match_endpoint() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(MatchEndpoint {
            signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for MatchEndpoint {
    fn name(&self) -> &str {
        "px__match_endpoint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
        let [path, endpoint] = arrays.as_slice() else { return exec_err!("px._match_endpoint takes 2 arguments") };
        let (path, endpoint) = (path.as_string::<i32>(), endpoint.as_string::<i32>());
        let out: BooleanArray = (0..n)
            .map(|i| (!path.is_null(i) && !endpoint.is_null(i)).then(|| matches(path.value(i), endpoint.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::{Clustering, MAX_CLUSTERS, matches};

    fn clustering(paths: &[&str]) -> Clustering {
        let mut c = Clustering::default();
        paths.iter().for_each(|p| c.add(p));
        c
    }

    #[test]
    fn paths_differing_in_one_component_share_an_endpoint_once_there_are_enough() {
        let ids: Vec<String> = (1..=6).map(|i| format!("/users/{i}/posts")).collect();
        let few = clustering(&ids.iter().take(5).map(String::as_str).collect::<Vec<_>>());
        // Five distinct paths: each still stands for itself.
        assert_eq!(few.predict("/users/3/posts"), "/users/3/posts");
        assert_eq!(few.predict("/users/99/posts"), "/users/*/posts");
        let many = clustering(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(many.predict("/users/3/posts"), "/users/*/posts");
        // Another depth, or nothing in common, is another endpoint.
        assert_eq!(many.predict("/users/3"), "/users/3");
        assert_eq!(many.predict("/a/b/c?x=1"), "/a/b/c");
    }

    #[test]
    fn partial_clusterings_merge_into_what_one_clustering_of_every_path_gives() {
        let paths: Vec<String> = (0..40).map(|i| format!("/api/v{}/item/{i}", i % 2)).collect();
        let all = clustering(&paths.iter().map(String::as_str).collect::<Vec<_>>());
        let (a, b) = paths.split_at(17);
        let mut merged = clustering(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let other = clustering(&b.iter().map(String::as_str).collect::<Vec<_>>());
        // Through the text agents send.
        merged.merge(Clustering::from_json(&other.to_json()).expect("json"));
        for p in &paths {
            assert_eq!(merged.predict(p), all.predict(p), "{p}");
        }
        assert_eq!(all.predict("/api/v1/item/7"), "/api/*/item/*");
    }

    #[test]
    fn json_is_pixies_and_bad_json_is_refused() {
        let c = clustering(&["/a/b"]);
        assert_eq!(c.to_json(), r#"[{"c":["a","b"],"m":[["a","b"]]}]"#);
        assert_eq!(Clustering::from_json(&c.to_json()), Some(c));
        assert!(Clustering::from_json("{}").is_none());
        assert!(Clustering::from_json("[{\"c\":1}]").is_none());
    }

    #[test]
    fn unrelated_paths_cannot_grow_a_clustering_without_end() {
        let mut c = Clustering::default();
        for i in 0..(MAX_CLUSTERS + 500) {
            c.add(&format!("/{i}"));
        }
        assert_eq!(c.clusters.len(), MAX_CLUSTERS);
        let long = "/x".repeat(10_000);
        c.add(&long);
        assert!(c.to_json().len() < 200_000);
    }

    #[test]
    fn endpoints_match_component_by_component() {
        assert!(matches("/users/42", "/users/*"));
        assert!(matches("users/42?x=1", "/users/*"));
        assert!(matches("/a/b/c", "/a/*/c"));
        assert!(matches("/", "/"));
        // A template never matches a path that is less specific, nor one of another depth.
        assert!(!matches("/a/*/c", "/a/b/c"));
        assert!(!matches("/users/42/posts", "/users/*"));
        assert!(!matches("/users", "/users/*"));
        assert!(!matches("/users/42", "/accounts/*"));
        // An empty component is a component: `/a//b` has three.
        assert!(matches("/a//b", "/a/*/b"));
    }
}
