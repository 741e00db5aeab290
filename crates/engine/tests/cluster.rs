//! The cluster split is exact: random rows spread over several stores, each store running its streams
//! (partial aggregates, pushed-down limits), a merge over what they sent, give what one store holding
//! every row gives, for every aggregate, joins, appends, limits and post-aggregate operators.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use loupe_engine::{Engine, QueryOutput, StreamInputs};
use loupe_planner::{ClusterPlan, RunsOn, split_cluster};
use loupe_schema::http::HttpEventRow;
use loupe_store::{Store, StoreConfig};

use crate::common::{NOW, compile, engine_with, opts, row};

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_rows(seed: u64, n: usize) -> Vec<HttpEventRow> {
    let mut rng = Rng(seed | 1);
    let paths = ["/a", "/b", "/c", "/d", "/e", "/f", "/g"];
    let methods = ["GET", "POST", "PUT"];
    let statuses = [200, 201, 404, 500];
    (0..n)
        .map(|_| {
            row(
                1 + rng.next(240) as i64,
                paths[rng.next(paths.len() as u64) as usize],
                methods[rng.next(methods.len() as u64) as usize],
                statuses[rng.next(statuses.len() as u64) as usize],
                1 + rng.next(900) as i64,
            )
        })
        .collect()
}

/// Every row of `outputs`, formatted, sorted: outputs compared as sets of rows (neither side promises an order).
fn rows_of(outputs: &[QueryOutput]) -> Vec<(String, Vec<String>)> {
    outputs
        .iter()
        .map(|o| {
            let text = pretty_format_batches(&o.batches).expect("formats").to_string();
            let mut lines: Vec<String> =
                text.lines().filter(|l| l.starts_with('|')).skip(1).map(str::to_string).collect();
            lines.sort();
            let header: Vec<String> = o.schema.fields().iter().map(|f| f.name().clone()).collect();
            (format!("{} {}", o.name, header.join(",")), lines)
        })
        .collect()
}

/// What a broker, PEMs and a Kelvin do, in one process: each of `agents` runs the agent streams, the
/// merger runs the broker's, then merges every output.
async fn run_cluster(agents: &[Engine], merger: &Engine, plan: &ClusterPlan) -> Vec<QueryOutput> {
    let mut inputs = StreamInputs::new();
    for (who, engine) in [(RunsOn::Agents, agents), (RunsOn::Broker, std::slice::from_ref(merger))] {
        let ids: Vec<usize> = (0..plan.streams.len()).filter(|&i| plan.streams[i].runs_on == who).collect();
        for e in engine {
            let outs = e.execute_streams(plan, &ids, &opts()).await.expect("stream runs");
            for (id, out) in ids.iter().zip(outs) {
                inputs.entry(*id).or_default().extend(out.batches);
            }
        }
    }
    let outputs: Vec<usize> = (0..plan.merge.outputs.len()).collect();
    merger.execute_merge(plan, &outputs, inputs, &opts()).await.expect("merge runs")
}

fn empty_engine() -> Engine {
    Engine::new(Arc::new(Store::new(StoreConfig::default())))
}

const SCRIPTS: &[&str] = &[
    // Every aggregate, grouped.
    "import px
df = px.DataFrame('http_events', start_time='-5m')
df.failed = df.resp_status >= 400
px.display(df.groupby(['req_path', 'req_method']).agg(
    n=('latency', px.count), total=('latency', px.sum), avg=('latency', px.mean), lo=('latency', px.min),
    hi=('latency', px.max), p50=('latency', px.p50), p99=('latency', px.p99), q=('latency', px.quantiles),
    errs=('failed', px.sum), err_rate=('failed', px.mean), first=('time_', px.min), any_path=('req_path', px.any),
), 'by_path')
",
    // A global aggregate, then operators over merged rows.
    "import px
df = px.DataFrame('http_events', start_time='-2m')
s = df.agg(n=('latency', px.count), avg=('latency', px.mean), p90=('latency', px.p90))
s.per_k = s.n / 1000.0
px.display(s, 'totals')
g = df.groupby('resp_status').agg(n=('latency', px.count))
g = g[g.n > 3]
px.display(g, 'busy')
",
    // A join of two aggregates, an append, rows.
    "import px
df = px.DataFrame('http_events', start_time='-5m')
a = df.groupby('req_path').agg(n=('latency', px.count))
b = df[df.resp_status == 500].groupby('req_path').agg(errors=('latency', px.count))
px.display(a.merge(b, how='left', left_on='req_path', right_on='req_path', suffixes=['', '_b']), 'joined')
u = df[df.req_method == 'GET'].append(df[df.req_method == 'PUT'])
px.display(u.groupby('req_method').agg(n=('latency', px.count), hi=('latency', px.max)), 'appended')
px.display(df[df.latency > 850 * 1000 * 1000][['req_path', 'latency']], 'slowest')
",
];

#[tokio::test]
async fn a_split_query_over_many_stores_gives_the_single_store_answer() {
    for (seed, stores) in [(7u64, 4usize), (99, 3), (12345, 5)] {
        let parts: Vec<Vec<HttpEventRow>> = (0..stores)
            .map(|i| if i == 1 { Vec::new() } else { random_rows(seed * 31 + i as u64, 150 + 40 * i) })
            .collect();
        let agents: Vec<Engine> = parts.iter().map(|p| engine_with(p)).collect();
        let all = engine_with(&parts.concat());
        for script in SCRIPTS {
            let program = compile(&all, script);
            let expected = all.execute_program(&program, &opts()).await.expect("runs on one store");
            let plan = split_cluster(program);
            let got = run_cluster(&agents, &empty_engine(), &plan).await;
            assert_eq!(rows_of(&got), rows_of(&expected), "seed {seed}, {stores} stores:\n{script}");
            assert!(got.iter().any(|o| o.num_rows() > 0));
        }
    }
}

#[tokio::test]
async fn agents_send_one_state_row_per_group_and_limits_are_pushed_down() {
    let parts: Vec<Vec<HttpEventRow>> = (0..3).map(|i| random_rows(500 + i, 400)).collect();
    let agents: Vec<Engine> = parts.iter().map(|p| engine_with(p)).collect();
    let program = compile(
        &agents[0],
        "import px
df = px.DataFrame('http_events', start_time='-5m')
px.display(df.groupby('req_path').agg(n=('latency', px.count), p=('latency', px.p99)), 'g')
px.display(df.head(4), 'h')
",
    );
    let plan = split_cluster(program);
    let sent = agents[0].execute_streams(&plan, &[0, 1], &opts()).await.expect("runs");
    assert_eq!(sent[0].num_rows(), 7, "one partial row per path");
    assert_eq!(sent[1].num_rows(), 4, "head(4) runs on the agent");
    let got = run_cluster(&agents, &empty_engine(), &plan).await;
    assert_eq!(got[1].num_rows(), 4);
    let total: i64 = got[0]
        .batches
        .iter()
        .map(|b| {
            let n = b.column_by_name("n").expect("n");
            datafusion::arrow::compute::sum(
                n.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().expect("i64"),
            )
            .unwrap_or(0)
        })
        .sum();
    assert_eq!(total, 1200);
}

#[tokio::test]
async fn a_merge_with_no_producer_answers_as_an_empty_store_does() {
    let all = empty_engine();
    let program = compile(
        &all,
        "import px
df = px.DataFrame('http_events', start_time='-5m')
px.display(df.agg(n=('latency', px.count), avg=('latency', px.mean), p=('latency', px.p50)))
",
    );
    let expected = all.execute_program(&program, &opts()).await.expect("runs");
    let got = run_cluster(&[], &empty_engine(), &split_cluster(program)).await;
    assert_eq!(rows_of(&got), rows_of(&expected));
    let _ = NOW;
}

/// Pixie's endpoint clustering (`pxbeta/service_endpoints`): the clustering aggregate travels between
/// agents as its JSON state and the endpoints it predicts are those one store predicts.
#[tokio::test]
async fn request_paths_cluster_into_the_same_endpoints_split_or_not() {
    let mut rng = Rng(42);
    let rows = |n: usize, rng: &mut Rng| -> Vec<HttpEventRow> {
        (0..n)
            .map(|_| {
                let path = match rng.next(3) {
                    0 => format!("/users/{}", rng.next(50)),
                    1 => format!("/orders/{}/items?page={}", rng.next(20), rng.next(3)),
                    _ => "/healthz".to_string(),
                };
                row(1 + rng.next(200) as i64, &path, "GET", 200, 5)
            })
            .collect()
    };
    let parts: Vec<Vec<HttpEventRow>> = (0..3).map(|_| rows(120, &mut rng)).collect();
    let agents: Vec<Engine> = parts.iter().map(|p| engine_with(p)).collect();
    let all = engine_with(&parts.concat());
    let script = "import px
df = px.DataFrame('http_events', start_time='-5m')
clustering = df.agg(clustering=('req_path', px._build_request_path_clusters))
df = df.merge(clustering, how='outer', right_on=[], left_on=[], suffixes=['', ''])
df.endpoint = px._predict_request_path_cluster(df.req_path, df.clustering)
px.display(df.groupby('endpoint').agg(n=('req_path', px.count)), 'endpoints')
";
    let program = compile(&all, script);
    let expected = all.execute_program(&program, &opts()).await.expect("runs on one store");
    let got = run_cluster(&agents, &empty_engine(), &split_cluster(program)).await;
    assert_eq!(rows_of(&got), rows_of(&expected));
    let lines = rows_of(&expected);
    let endpoints: Vec<&str> = lines[0].1.iter().map(|l| l.split(',').next().unwrap_or_default()).collect();
    assert_eq!(endpoints.len(), 3, "{lines:?}");
    assert!(lines[0].1.iter().any(|l| l.contains("/users/*")), "{lines:?}");
    assert!(lines[0].1.iter().any(|l| l.contains("/orders/*/items")), "{lines:?}");
    assert!(lines[0].1.iter().any(|l| l.contains("/healthz")), "{lines:?}");
}
