//! Repeated subtrees of a query, computed once.
//!
//! A PxL plan is a tree: a dataframe used twice (`df.append(df)`, a helper called for several outputs)
//! appears as two copies of its whole plan. Scripts that build on themselves this way (Pixie's
//! `kafka_overview` unnests a column by appending five filtered copies of a frame, twice over, for
//! producers and consumers alike) reach thousands of nodes, and DataFusion, which plans trees too,
//! then spends its time re-planning the same subtrees. Pixie plans a DAG instead. Here the repeated
//! subtrees that would cost the most to plan again are run once, before the outputs are planned,
//! and every copy reads the result ([`Shared`]): each output's plan then holds every distinct subtree
//! once.
//!
//! Owns the choice (a subtree repeated, larger than a source, and saving at least
//! [`MIN_NODES_SAVED`] nodes of planning) and the memory the results hold: at most
//! [`budget`] bytes, past which a subtree is planned as a tree again, as before. Must not lower
//! plans itself (`lower` does, and reads [`Shared`] first).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt as _;
use loupe_pxl::{Plan, Program};

use crate::{Engine, ExecOptions, Result, lower};

/// Nodes of planning a repeated subtree must save (its size times its extra copies) to be run once: below
/// that, planning the copies costs less than holding a result. Scripts of a few outputs over a shared
/// frame stay streamed as they were.
pub(crate) const MIN_NODES_SAVED: usize = 64;

/// Results of repeated subtrees, by the address of every node that computes one (the program's
/// copies). Empty unless [`prepare`] filled it for this query's program.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared(Arc<HashMap<usize, Arc<MemTable>>>);

impl Shared {
    /// The result every copy of `plan` reads, when it was computed once.
    pub(crate) fn get(&self, plan: &Plan) -> Option<Arc<MemTable>> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&(plan as *const Plan as usize)).cloned()
    }
}

/// Bytes the results of one query may hold: half its operators' pool when it has one, else 256 MiB.
pub(crate) fn budget(opts: &ExecOptions) -> usize {
    opts.memory_limit_bytes.map_or(256 << 20, |b| b / 2)
}

/// One distinct subtree of a program: where each of its copies is, its size in nodes, and the group of
/// each copy's parent (`None` for an output's root).
struct Group<'p> {
    copies: Vec<&'p Plan>,
    nodes: usize,
    parents: Vec<Option<usize>>,
}

/// The repeated subtrees of `program`'s outputs worth computing once, children before parents (so each
/// reads its own repeated parts once they are computed): larger than a source, saving at least
/// [`MIN_NODES_SAVED`] nodes, not a mere choice of columns, and not only ever the whole input of one
/// larger repeated subtree with as many copies (computing that one holds the same rows once, not twice).
fn repeated(program: &Program) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    /// The node's size and its group.
    fn visit<'p>(plan: &'p Plan, groups: &mut Vec<Group<'p>>, by_key: &mut HashMap<String, usize>) -> (usize, usize) {
        let children: Vec<(usize, usize)> = plan.inputs().into_iter().map(|c| visit(c, groups, by_key)).collect();
        let nodes = 1 + children.iter().map(|(n, _)| n).sum::<usize>();
        let kids: Vec<usize> = children.iter().map(|(_, g)| *g).collect();
        let id = *by_key.entry(local_key(plan, &kids)).or_insert_with(|| {
            groups.push(Group { copies: Vec::new(), nodes, parents: Vec::new() });
            groups.len() - 1
        });
        if let Some(g) = groups.get_mut(id) {
            g.copies.push(plan);
        }
        for child in kids {
            if let Some(g) = groups.get_mut(child) {
                g.parents.push(Some(id));
            }
        }
        (nodes, id)
    }
    let mut roots = Vec::new();
    for out in &program.outputs {
        roots.push(visit(&out.plan, &mut groups, &mut by_key).1);
    }
    for root in roots {
        if let Some(g) = groups.get_mut(root) {
            g.parents.push(None);
        }
    }
    // Choosing or renaming columns copies nothing: sharing its input is what pays.
    let reshapes = |g: &Group<'_>| {
        g.copies.first().is_some_and(|p| matches!(p, Plan::Project { .. } | Plan::Drop { .. } | Plan::Rename { .. }))
    };
    let worth = |g: &Group<'_>| {
        g.copies.len() >= 2 && g.nodes > 1 && g.nodes * (g.copies.len() - 1) >= MIN_NODES_SAVED && !reshapes(g)
    };
    let keep: Vec<bool> = groups
        .iter()
        .map(|g| {
            let only_parent = match g.parents.first() {
                Some(Some(p)) if g.parents.iter().all(|q| *q == Some(*p)) => groups.get(*p),
                _ => None,
            };
            worth(g) && !only_parent.is_some_and(|p| worth(p) && p.copies.len() == g.copies.len())
        })
        .collect();
    groups.into_iter().zip(keep).filter_map(|(g, k)| k.then_some(g)).collect()
}

/// What identifies `plan` among the program's nodes, given its inputs' groups: its own fields and its
/// inputs' group numbers, so equal subtrees get equal keys in time linear in the plan's size (the plan is
/// plain data with its times resolved).
fn local_key(plan: &Plan, kids: &[usize]) -> String {
    let key = match plan {
        Plan::Source { .. } | Plan::Udtf { .. } => serde_json::to_string(plan),
        Plan::Filter { predicate, .. } => serde_json::to_string(&("filter", kids, predicate)),
        Plan::Map { column, expr, .. } => serde_json::to_string(&("map", kids, column, expr)),
        Plan::Project { columns, .. } => serde_json::to_string(&("project", kids, columns)),
        Plan::Drop { columns, .. } => serde_json::to_string(&("drop", kids, columns)),
        Plan::Aggregate { group_by, aggs, .. } => serde_json::to_string(&("aggregate", kids, group_by, aggs)),
        Plan::Limit { n, .. } => serde_json::to_string(&("limit", kids, n)),
        Plan::Join { how, left_columns, right_columns, left_on, right_on, .. } => {
            serde_json::to_string(&("join", kids, how, left_columns, right_columns, left_on, right_on))
        }
        Plan::Union { .. } => serde_json::to_string(&("union", kids)),
        Plan::Rename { renames, .. } => serde_json::to_string(&("rename", kids, renames)),
    };
    // Serializing plain data cannot fail; were it to, the node would match no other.
    key.unwrap_or_else(|_| format!("{:p}", plan))
}

/// An engine for `program` whose lowering reads each expensive repeated subtree from a result computed
/// here once, within `budget` bytes in all: a subtree whose result would pass it is left to be planned
/// as a tree.
pub(crate) async fn prepare(eng: &Engine, ctx: &SessionContext, program: &Program, budget: usize) -> Result<Engine> {
    let mut eng = eng.clone();
    let mut held = 0usize;
    for group in repeated(program) {
        let Some(first) = group.copies.first() else { continue };
        // A copy inside a subtree computed already is never lowered again.
        if eng.shared.get(first).is_some() {
            continue;
        }
        let df = lower::lower_plan(ctx, &eng, first)?;
        let mut stream = df.execute_stream().await?;
        // The executed schema, which the batches carry exactly (the logical one may differ in nullability).
        let schema = stream.schema();
        let mut batches = Vec::new();
        let mut over = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            held += batch.get_array_memory_size();
            if held > budget {
                over = true;
                break;
            }
            batches.push(batch);
        }
        if over {
            // This one and the rest are planned as trees, as without sharing.
            break;
        }
        let parts = lower::partition(batches, ctx.copied_config().target_partitions());
        let table = Arc::new(MemTable::try_new(schema, parts)?);
        let mut map = (*eng.shared.0).clone();
        for copy in &group.copies {
            map.insert(*copy as *const Plan as usize, table.clone());
        }
        eng.shared = Shared(Arc::new(map));
    }
    Ok(eng)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loupe_pxl::CompileOptions;
    use loupe_store::{Store, StoreConfig};

    use super::*;

    /// An engine over one `http_events` row with status 200.
    fn engine() -> Engine {
        use loupe_schema::http::{HttpEventRow, HttpEventsBuilder, http_events};
        let store = Arc::new(Store::new(StoreConfig::default()));
        let table = store.register(&http_events()).expect("register");
        let mut b = HttpEventsBuilder::new();
        b.append(&HttpEventRow { time_ns: 10, resp_status: 200, req_path: "/a".into(), ..HttpEventRow::default() });
        table.append(b.finish().expect("batch")).expect("append");
        Engine::new(store)
    }

    fn program(script: &str) -> Program {
        let engine = engine();
        loupe_pxl::compile(script, &engine.catalog(), &CompileOptions { now_ns: 1 })
            .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(script, "t.pxl")).collect::<String>()))
    }

    const FIVE: &str = "import px\n\
        def five(d):\n    return d.append(d).append(d).append(d).append(d)\n\
        df = px.DataFrame('http_events')\ndf = df[df.resp_status == 200]\ndf.k = df.req_path\n";

    #[test]
    fn a_frame_appended_to_itself_many_times_is_shared_from_the_inside_out() {
        let p = program(&format!("{FIVE}px.display(five(five(five(df))).groupby('k').agg(n=('k', px.count)))"));
        let groups = repeated(&p);
        // The base frame (map, filter, source: 125 copies), five of it (25 copies), five of that (5 copies);
        // not the projections the compiler puts on appended frames, nor the unions inside `five`.
        let shape: Vec<(usize, usize)> = groups.iter().map(|g| (g.nodes, g.copies.len())).collect();
        assert_eq!(shape, vec![(3, 125), (23, 25), (123, 5)], "{shape:?}");
    }

    #[test]
    fn small_repeats_stay_streamed() {
        // Two outputs over one frame: a few nodes saved, not worth holding a result.
        let p = program(&format!("{FIVE}px.display(df, 'a')\npx.display(df.groupby('k').agg(n=('k', px.count)), 'b')"));
        assert!(repeated(&p).is_empty());
        // A source alone is never a group: scanning again costs nothing to plan.
        let p = program("import px\npx.display(px.DataFrame('http_events').append(px.DataFrame('http_events')))");
        assert!(repeated(&p).is_empty());
    }

    #[test]
    fn results_are_held_within_the_budget_or_not_at_all() {
        let p = program(&format!("{FIVE}px.display(five(five(five(df))).groupby('k').agg(n=('k', px.count)))"));
        let eng = engine();
        let ctx = eng.session(&ExecOptions::default()).expect("session");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        // Every copy of the three groups reads a result.
        let shared = rt.block_on(prepare(&eng, &ctx, &p, budget(&ExecOptions::default()))).expect("prepare");
        assert_eq!(shared.shared.0.len(), 125 + 25 + 5);
        // No room for even the first: nothing is held, every copy is planned as a tree.
        let shared = rt.block_on(prepare(&eng, &ctx, &p, 0)).expect("prepare");
        assert!(shared.shared.0.is_empty());
    }
}
