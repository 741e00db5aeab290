//! The multi-node split: a compiled [`Program`] becomes the streams every data node (or the broker)
//! produces and the merge program a Kelvin runs over them.
//!
//! Owns where each operator runs. Each output's plan tree is cut at its maximal agent-runnable subtrees
//! (a table scan under filters, maps, projections, drops and renames): such a subtree becomes a
//! [`Stream`] that every PEM runs over its own store, and the merge program reads it back as a
//! placeholder source named [`stream_table`]`(i)`. An aggregate directly over such a subtree is cut
//! *with* the subtree: agents send one partial-state row per group ([`StreamSends::PartialAggregates`];
//! every PxL aggregate decomposes: counts and sums add, min/max/any take min/max, a mean is a sum and a
//! count, percentiles and `px.quantiles` merge quantile sketches), and the placeholder reads the
//! finalized rows. A `head(n)` directly over one is pushed to the agents as a local limit as well
//! (the merge keeps the `head(n)`). Everything above the cuts (final aggregates, joins, appends, limits,
//! maps and filters over merged rows) runs on a Kelvin. Source functions (`px.GetAgentStatus()`, …)
//! answer for the cluster, so they run once, on the broker ([`RunsOn::Broker`]); so do scans of tables the
//! broker holds for the whole cluster (cron scripts' results in its history), with the row-wise operators and
//! partial aggregate above them, as an agent would.
//!
//! Must not execute anything (the engine runs streams and merges) nor know the wire: a plan is
//! serde-serializable and callers choose the encoding ([`ClusterPlan::to_json`] is the one the vizier
//! services use).

use loupe_pxl::{Aggregation, Output, Plan, Program};

/// Prefix of the placeholder source a merge program reads stream `i` from. No store table starts with it.
pub const STREAM_TABLE_PREFIX: &str = "__loupe_stream_";

/// The placeholder table name of stream `i` in a merge program.
pub fn stream_table(i: usize) -> String {
    format!("{STREAM_TABLE_PREFIX}{i}")
}

/// Which stream a placeholder table name stands for.
pub fn stream_index(table: &str) -> Option<usize> {
    table.strip_prefix(STREAM_TABLE_PREFIX)?.parse().ok()
}

/// A script split for a cluster: streams produced where the data is, and the merge over them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterPlan {
    /// Stream `i` is read by the merge as [`stream_table`]`(i)`.
    pub streams: Vec<Stream>,
    /// The script's outputs, in display order, over the streams' placeholders (and its row cap setting).
    pub merge: Program,
}

/// One stream: a plan every producer runs, and what its rows are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stream {
    /// What each producer runs over its own data.
    pub plan: Plan,
    /// What it sends.
    pub sends: StreamSends,
    /// Who produces it.
    pub runs_on: RunsOn,
}

/// What a stream's rows are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StreamSends {
    /// The plan's rows, at most `limit` from each producer; the merge reads their union.
    Rows {
        /// A producer-side limit (a `head(n)` or the output row cap pushed down).
        limit: Option<usize>,
    },
    /// Partial states of `plan` aggregated by `group_by` (one row per group per producer); the merge
    /// reads the finalized aggregate (group columns then `aggs`' outputs, as the compiler promised).
    PartialAggregates {
        /// Group keys.
        group_by: Vec<String>,
        /// Aggregates.
        aggs: Vec<Aggregation>,
    },
}

/// Who produces a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunsOn {
    /// Every live data node (PEM), over its own store.
    Agents,
    /// The broker, once, for the whole cluster (source functions, tables only the broker holds).
    Broker,
}

/// A plan that cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("cluster plan encoding failed")]
pub struct EncodeError(#[from] serde_json::Error);

impl ClusterPlan {
    /// The plan as JSON, as the broker ships it to Kelvins and PEMs.
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// The plan [`ClusterPlan::to_json`] wrote.
    pub fn from_json(bytes: &[u8]) -> Result<ClusterPlan, EncodeError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Indexes of the streams merge outputs `outputs` read (each once, in order).
    pub fn streams_of(&self, outputs: &[usize]) -> Vec<usize> {
        let mut found = Vec::new();
        for &o in outputs {
            if let Some(out) = self.merge.outputs.get(o) {
                collect_streams(&out.plan, &mut found);
            }
        }
        found
    }
}

fn collect_streams(plan: &Plan, found: &mut Vec<usize>) {
    if let Plan::Source { table, .. } = plan
        && let Some(i) = stream_index(table)
        && !found.contains(&i)
    {
        found.push(i);
    }
    for child in plan.inputs() {
        collect_streams(child, found);
    }
}

/// Whether every node of `plan` can run on a data node over its own rows alone: a scan under row-wise
/// operators.
pub fn agent_runnable(plan: &Plan) -> bool {
    match plan {
        Plan::Source { table, .. } => stream_index(table).is_none(),
        Plan::Filter { input, .. }
        | Plan::Map { input, .. }
        | Plan::Project { input, .. }
        | Plan::Drop { input, .. }
        | Plan::Rename { input, .. } => agent_runnable(input),
        Plan::Aggregate { .. } | Plan::Limit { .. } | Plan::Join { .. } | Plan::Union { .. } | Plan::Udtf { .. } => {
            false
        }
    }
}

/// Splits `program` for a cluster (see the module doc for where each operator goes), every table being on
/// the agents.
pub fn split_cluster(program: Program) -> ClusterPlan {
    split_cluster_with(program, &|_| false)
}

/// [`split_cluster`], where `held_by_broker(table)` says which tables the broker alone holds (its scans run
/// there, once).
pub fn split_cluster_with(program: Program, held_by_broker: &dyn Fn(&str) -> bool) -> ClusterPlan {
    let cap = program.max_output_rows_per_table.unwrap_or(loupe_pxl::DEFAULT_MAX_OUTPUT_ROWS);
    let mut split = Splitter { streams: Vec::new(), held_by_broker };
    let outputs = program
        .outputs
        .into_iter()
        .map(|out| {
            // A whole output that agents can run is their rows' union, capped where it is made: no agent
            // needs to send more rows than the output can show.
            let plan = if agent_runnable(&out.plan) {
                split.push(out.plan, StreamSends::Rows { limit: Some(cap) })
            } else {
                split.cut(out.plan)
            };
            Output { plan, ..out }
        })
        .collect();
    ClusterPlan {
        streams: split.streams,
        merge: Program { outputs, max_output_rows_per_table: program.max_output_rows_per_table },
    }
}

/// The scanned table of an agent-runnable plan.
fn scanned_table(plan: &Plan) -> &str {
    match plan {
        Plan::Source { table, .. } => table,
        other => other.inputs().first().map_or("", |input| scanned_table(input)),
    }
}

struct Splitter<'a> {
    streams: Vec<Stream>,
    held_by_broker: &'a dyn Fn(&str) -> bool,
}

impl Splitter<'_> {
    /// Makes agent-runnable `plan` a stream (on the broker when it scans a table only the broker holds) and
    /// returns the merge's placeholder for it.
    fn push(&mut self, plan: Plan, sends: StreamSends) -> Plan {
        let runs_on = if (self.held_by_broker)(scanned_table(&plan)) { RunsOn::Broker } else { RunsOn::Agents };
        self.push_on(plan, sends, runs_on)
    }

    fn push_on(&mut self, plan: Plan, sends: StreamSends, runs_on: RunsOn) -> Plan {
        self.streams.push(Stream { plan, sends, runs_on });
        Plan::Source { table: stream_table(self.streams.len() - 1), columns: None, start_ns: None, end_ns: None }
    }

    fn cut(&mut self, plan: Plan) -> Plan {
        if agent_runnable(&plan) {
            return self.push(plan, StreamSends::Rows { limit: None });
        }
        match plan {
            // The broker, too, sends partial states for a table it holds: one row per group, not its rows.
            Plan::Aggregate { input, group_by, aggs } if agent_runnable(&input) => {
                self.push(*input, StreamSends::PartialAggregates { group_by, aggs })
            }
            Plan::Limit { input, n } if agent_runnable(&input) => {
                let input = Box::new(self.push(*input, StreamSends::Rows { limit: Some(n) }));
                Plan::Limit { input, n }
            }
            udtf @ Plan::Udtf { .. } => self.push_on(udtf, StreamSends::Rows { limit: None }, RunsOn::Broker),
            Plan::Filter { input, predicate } => Plan::Filter { input: Box::new(self.cut(*input)), predicate },
            Plan::Map { input, column, expr } => Plan::Map { input: Box::new(self.cut(*input)), column, expr },
            Plan::Project { input, columns } => Plan::Project { input: Box::new(self.cut(*input)), columns },
            Plan::Drop { input, columns } => Plan::Drop { input: Box::new(self.cut(*input)), columns },
            Plan::Rename { input, renames } => Plan::Rename { input: Box::new(self.cut(*input)), renames },
            Plan::Aggregate { input, group_by, aggs } => {
                Plan::Aggregate { input: Box::new(self.cut(*input)), group_by, aggs }
            }
            Plan::Limit { input, n } => Plan::Limit { input: Box::new(self.cut(*input)), n },
            Plan::Join { left, right, how, left_columns, right_columns, left_on, right_on } => {
                let left = Box::new(self.cut(*left));
                let right = Box::new(self.cut(*right));
                Plan::Join { left, right, how, left_columns, right_columns, left_on, right_on }
            }
            Plan::Union { inputs } => Plan::Union { inputs: inputs.into_iter().map(|p| self.cut(p)).collect() },
            // A scan is agent-runnable, so it was cut above.
            source @ Plan::Source { .. } => source,
        }
    }
}

#[cfg(test)]
mod tests {
    use loupe_pxl::{AggFunc, CompileOptions, SchemaCatalog};

    use super::*;

    fn compile(script: &str) -> Program {
        loupe_pxl::compile(script, &SchemaCatalog, &CompileOptions { now_ns: 1_700_000_000_000_000_000 })
            .expect("compiles")
    }

    #[test]
    fn a_table_the_broker_holds_is_scanned_there_once_with_the_work_above_it() {
        // A held table with http_events' columns (the planner needs no schema of its own).
        let catalog = |name: &str| {
            let name = if name == "cron_stats" { "http_events" } else { name };
            loupe_pxl::Catalog::table_schema(&SchemaCatalog, name)
        };
        let script = "import px
c = px.DataFrame('cron_stats', start_time='-1d')
c = c[c.latency > 1]
px.display(c.groupby('req_path').agg(n=('latency', px.sum)), 'kept')
px.display(c, 'rows')
h = px.DataFrame('http_events', start_time='-5m')
px.display(h.agg(n=('latency', px.count)), 'live')
";
        let program = loupe_pxl::compile(script, &catalog, &CompileOptions { now_ns: 1_700_000_000_000_000_000 })
            .expect("compiles");
        let plan = split_cluster_with(program, &|t| t == "cron_stats");
        let on: Vec<(RunsOn, bool)> = plan
            .streams
            .iter()
            .map(|s| (s.runs_on, matches!(s.sends, StreamSends::PartialAggregates { .. })))
            .collect();
        assert_eq!(on, [(RunsOn::Broker, true), (RunsOn::Broker, false), (RunsOn::Agents, true)]);
        assert_eq!(scanned_table(&plan.streams[1].plan), "cron_stats");
        // Everything is on the agents when nothing is held.
        let program = loupe_pxl::compile(script, &catalog, &CompileOptions { now_ns: 1_700_000_000_000_000_000 })
            .expect("compiles");
        assert!(split_cluster(program).streams.iter().all(|s| s.runs_on == RunsOn::Agents));
    }

    #[test]
    fn an_aggregate_over_a_scan_is_partial_on_agents_and_final_on_the_merge() {
        let plan = split_cluster(compile(
            "import px
df = px.DataFrame('http_events', start_time='-5m')
df = df[df.resp_status >= 400]
s = df.groupby('req_path').agg(n=('latency', px.count), p=('latency', px.p99))
s = s[s.n > 2]
px.display(s, 'slow')
px.display(df.head(3), 'sample')
px.display(px.GetAgentStatus(), 'agents')
",
        ));
        assert_eq!(plan.streams.len(), 3);
        let StreamSends::PartialAggregates { group_by, aggs } = &plan.streams[0].sends else { panic!("partial") };
        assert_eq!(group_by, &["req_path"]);
        assert_eq!(
            aggs.iter().map(|a| a.func).collect::<Vec<_>>(),
            [AggFunc::Count, AggFunc::Percentile(loupe_pxl::PercentileKey::P99)]
        );
        assert!(matches!(plan.streams[0].plan, Plan::Filter { .. }), "the filter runs on the agents");
        // The filter over the aggregate stays on the merge, over the placeholder.
        let Plan::Filter { input, .. } = &plan.merge.outputs[0].plan else { panic!("merge filter") };
        assert!(matches!(&**input, Plan::Source { table, .. } if table == &stream_table(0)));
        assert_eq!(plan.streams[1].sends, StreamSends::Rows { limit: Some(3) });
        assert!(matches!(plan.merge.outputs[1].plan, Plan::Limit { n: 3, .. }));
        assert_eq!(plan.streams[2].runs_on, RunsOn::Broker);
        assert_eq!(plan.streams_of(&[1, 0]), [1, 0]);
        assert_eq!(ClusterPlan::from_json(&plan.to_json().expect("encodes")).expect("decodes"), plan);
    }

    #[test]
    fn a_join_of_two_aggregates_merges_both_on_the_kelvin() {
        let plan = split_cluster(compile(
            "import px
a = px.DataFrame('http_events', start_time='-5m').groupby('req_path').agg(n=('latency', px.count))
b = px.DataFrame('http_events', start_time='-5m').groupby('req_path').agg(m=('latency', px.mean))
px.display(a.merge(b, how='inner', left_on='req_path', right_on='req_path', suffixes=['', '_b']))
",
        ));
        assert_eq!(plan.streams.len(), 2);
        assert!(plan.streams.iter().all(|s| matches!(s.sends, StreamSends::PartialAggregates { .. })));
        assert!(matches!(plan.merge.outputs[0].plan, Plan::Join { .. }));
    }

    #[test]
    fn an_output_agents_can_run_is_capped_on_each_agent() {
        let plan = split_cluster(compile(
            "#px:set max_output_rows_per_table=7
import px
px.display(px.DataFrame('http_events', start_time='-5m'))
",
        ));
        assert_eq!(plan.streams[0].sends, StreamSends::Rows { limit: Some(7) });
        assert!(matches!(&plan.merge.outputs[0].plan, Plan::Source { table, .. } if stream_index(table) == Some(0)));
    }
}
