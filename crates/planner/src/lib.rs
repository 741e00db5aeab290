//! The query planner: PxL text → a compiled [`Program`] → a [`DistributedPlan`] of fragments, made by
//! whoever receives the script (a node agent's query service today, the query broker later), never by
//! the engine that runs them.
//!
//! Owns the split of a program into the [`AgentFragment`] every data node runs over its own store and
//! the [`MergeFragment`] that combines their streams, and measuring how long compiling and splitting
//! took (reported to the client as `compilation_time_ns`). Two splits: [`split_single_node`] (one agent
//! fragment that is the whole program, every merge a pass-through: a PEM answering alone) and
//! [`split_cluster`] (`cluster`: streams cut at agent-runnable subtrees, partial aggregates on the agents,
//! the rest on a Kelvin: what the query broker runs).
//!
//! Must not touch execution (no DataFusion, no store: `loupe-engine` runs fragments), PxL syntax or
//! type rules (that is `loupe-pxl`), or the wire (callers map [`Diagnostic`]s to their protocol).

mod cluster;

use std::time::{Duration, Instant};

pub use cluster::{
    ClusterPlan, EncodeError, RunsOn, STREAM_TABLE_PREFIX, Stream, StreamSends, agent_runnable, split_cluster,
    split_cluster_with, stream_index, stream_table,
};

use loupe_pxl::{Aggregation, Catalog, CompileOptions, Diagnostic, ExecFunc, Program};

/// Stack of the thread a script compiles on.
const COMPILE_STACK: usize = 64 << 20;

/// A script compiled and split, ready for the engines that run it.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributedPlan {
    /// What each data node runs over its own store.
    pub agent: AgentFragment,
    /// How the nodes' streams become the script's outputs.
    pub merge: MergeFragment,
    /// Wall time spent compiling and splitting.
    pub compile_time: Duration,
}

/// The fragment every agent runs: a program whose outputs each agent streams to the merge, output `i`
/// feeding merge output `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFragment {
    /// The plans, one per script output, in display order.
    pub program: Program,
    /// What output `i`'s rows are (same length as `program.outputs`).
    pub sends: Vec<Sends>,
}

/// What an agent output's rows are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sends {
    /// Finished rows of the output's columns.
    Rows,
    /// Partial aggregate states: the output plan's top `Aggregate` run in partial mode over this
    /// node's rows (one state row per group), for the merge to finalize.
    PartialAggregates {
        /// Group keys.
        group_by: Vec<String>,
        /// Aggregates whose states are sent.
        aggs: Vec<Aggregation>,
    },
}

/// How the agents' streams become the script's outputs, one [`Merge`] per output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeFragment {
    /// Output `i`'s merge.
    pub outputs: Vec<Merge>,
}

/// The merge of one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// One agent's rows are the output as they are: the single-node case.
    PassThrough,
    /// Every agent's rows, concatenated, up to the output's row cap.
    Union,
    /// Every agent's partial states of [`Sends::PartialAggregates`], combined per group and finalized.
    FinalizeAggregates {
        /// Group keys.
        group_by: Vec<String>,
        /// Aggregates to finalize.
        aggs: Vec<Aggregation>,
    },
}

/// Why a plan cannot run on one node alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An output's merge combines several agents' streams, which needs a merge tier.
    #[error("output `{output}` needs a merge tier ({merge}), which this node does not run")]
    NeedsMerge {
        /// The output's name.
        output: String,
        /// Which merge it needs.
        merge: &'static str,
    },
}

/// Compiles `source` against `catalog` and splits it for one node, measuring both.
pub fn plan_single_node(
    source: &str,
    catalog: &(dyn Catalog + Sync),
    options: &CompileOptions,
) -> Result<DistributedPlan, Vec<Diagnostic>> {
    plan_single_node_with_funcs(source, catalog, options, &[])
}

/// [`plan_single_node`] for a function-form script: each of `exec_funcs` (from a vis spec) is called
/// and its dataframe becomes one more output (`loupe_pxl::compile_with_funcs`).
pub fn plan_single_node_with_funcs(
    source: &str,
    catalog: &(dyn Catalog + Sync),
    options: &CompileOptions,
    exec_funcs: &[ExecFunc],
) -> Result<DistributedPlan, Vec<Diagnostic>> {
    let started = Instant::now();
    let mut plan = split_single_node(compile(source, catalog, options, exec_funcs)?);
    plan.compile_time = started.elapsed();
    Ok(plan)
}

/// Compiles `source` once and splits it for a cluster ([`split_cluster`]), returning the plan and the time
/// compiling and splitting took: what a query broker does with each script.
pub fn plan_cluster(
    source: &str,
    catalog: &(dyn Catalog + Sync),
    options: &CompileOptions,
    exec_funcs: &[ExecFunc],
) -> Result<(ClusterPlan, Duration), Vec<Diagnostic>> {
    let started = Instant::now();
    let plan = split_cluster_with(compile(source, catalog, options, exec_funcs)?, &|t| catalog.held_by_broker(t));
    Ok((plan, started.elapsed()))
}

fn compile(
    source: &str,
    catalog: &(dyn Catalog + Sync),
    options: &CompileOptions,
    exec_funcs: &[ExecFunc],
) -> Result<Program, Vec<Diagnostic>> {
    // The checker recurses over the script (nested expressions, user function calls): it runs on a thread
    // of its own with a stack sized for the largest scripts the parser accepts, whatever stack the caller has.
    let program = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("pxl-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn_scoped(scope, || loupe_pxl::compile_with_funcs(source, catalog, options, exec_funcs))
            .map(|handle| handle.join())
    });
    let program = match program {
        Ok(Ok(result)) => result?,
        // No thread to compile on (the OS refused one), or the compiler panicked: compile here and let the
        // caller see what it sees.
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => loupe_pxl::compile_with_funcs(source, catalog, options, exec_funcs)?,
    };
    Ok(program)
}

/// The single-node split: the agent fragment is the whole program, each output's rows go out as
/// they are (`compile_time` is left at zero for the caller that timed the compile).
pub fn split_single_node(program: Program) -> DistributedPlan {
    let n = program.outputs.len();
    DistributedPlan {
        agent: AgentFragment { program, sends: vec![Sends::Rows; n] },
        merge: MergeFragment { outputs: vec![Merge::PassThrough; n] },
        compile_time: Duration::ZERO,
    }
}

impl DistributedPlan {
    /// The program one node runs when its results are the answer (every merge a pass-through of
    /// finished rows), or which output needs a merge tier.
    pub fn into_local(self) -> Result<Program, PlanError> {
        let outputs = &self.agent.program.outputs;
        for (i, (merge, sends)) in self.merge.outputs.iter().zip(&self.agent.sends).enumerate() {
            let merge = match (merge, sends) {
                (Merge::PassThrough, Sends::Rows) => continue,
                (Merge::PassThrough, Sends::PartialAggregates { .. }) => "partial aggregates",
                (Merge::Union, _) => "union",
                (Merge::FinalizeAggregates { .. }, _) => "finalize aggregates",
            };
            let output = outputs.get(i).map_or_else(|| i.to_string(), |o| o.name.clone());
            return Err(PlanError::NeedsMerge { output, merge });
        }
        Ok(self.agent.program)
    }
}

#[cfg(test)]
mod tests {
    use loupe_pxl::{AggFunc, Plan, SchemaCatalog};

    use super::*;

    const SCRIPT: &str = "import px
df = px.DataFrame('http_events', start_time='-5m')
px.display(df.groupby('req_path').agg(n=('latency', px.count)), 'by_path')
px.display(df.head(3), 'sample')
";

    fn options() -> CompileOptions {
        CompileOptions { now_ns: 1_700_000_000_000_000_000 }
    }

    #[test]
    fn the_single_node_split_runs_the_whole_program_and_passes_its_rows_through() {
        let plan = plan_single_node(SCRIPT, &SchemaCatalog, &options()).expect("compiles");
        let compiled = loupe_pxl::compile(SCRIPT, &SchemaCatalog, &options()).expect("compiles");
        assert_eq!(plan.agent.sends, vec![Sends::Rows, Sends::Rows]);
        assert_eq!(plan.merge.outputs, vec![Merge::PassThrough, Merge::PassThrough]);
        assert!(plan.compile_time > Duration::ZERO, "compiling takes measurable time");
        assert_eq!(plan.into_local(), Ok(compiled));
    }

    #[test]
    fn compile_errors_come_back_as_diagnostics() {
        let d = plan_single_node("import px\npx.display(px.DataFrame('http_event'))", &SchemaCatalog, &options())
            .expect_err("unknown table");
        assert_eq!((d[0].line, d[0].column, d[0].message.as_str()), (2, 25, "unknown table `http_event`"));
    }

    #[test]
    fn a_plan_that_needs_a_merge_tier_does_not_run_on_one_node() {
        // What a two-tier split of `by_path` will produce: agents send partial counts, the merge sums them.
        let mut plan = plan_single_node(SCRIPT, &SchemaCatalog, &options()).expect("compiles");
        let Plan::Aggregate { group_by, aggs, .. } = plan.agent.program.outputs[0].plan.clone() else {
            panic!("by_path is an aggregate")
        };
        assert_eq!(aggs[0].func, AggFunc::Count);
        plan.agent.sends[0] = Sends::PartialAggregates { group_by: group_by.clone(), aggs: aggs.clone() };
        plan.merge.outputs[0] = Merge::FinalizeAggregates { group_by, aggs };
        assert_eq!(
            plan.clone().into_local().map(|_| ()),
            Err(PlanError::NeedsMerge { output: "by_path".into(), merge: "finalize aggregates" })
        );
        plan.merge.outputs[0] = Merge::PassThrough;
        assert_eq!(
            plan.into_local().map(|_| ()).map_err(|e| e.to_string()),
            Err("output `by_path` needs a merge tier (partial aggregates), which this node does not run".into())
        );
    }
}
