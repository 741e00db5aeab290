//! Compiler tests: one per supported construct, one per error kind (exact line:column), and a
//! property test that arbitrary input never panics.

use proptest::prelude::*;

use crate::*;

const NOW: i64 = 1_700_000_000_000_000_000;
const MIN: i64 = 60_000_000_000;

fn ok(src: &str) -> Program {
    compile(src, &SchemaCatalog, &CompileOptions { now_ns: NOW })
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(src, "t.pxl")).collect::<String>()))
}

fn plan(src: &str) -> Plan {
    ok(src).outputs.remove(0).plan
}

fn cols(src: &str) -> Vec<(String, PxType)> {
    ok(src).outputs.remove(0).columns.into_iter().map(|c| (c.name, c.ty)).collect()
}

/// The first diagnostic: (line, column, message).
fn err(src: &str) -> (u32, u32, String) {
    let d = compile(src, &SchemaCatalog, &CompileOptions { now_ns: NOW }).expect_err("must not compile");
    (d[0].line, d[0].column, d[0].message.clone())
}

fn src(body: &str) -> String {
    format!("import px\ndf = px.DataFrame('http_events')\n{body}")
}

fn source(table: &str) -> Plan {
    Plan::Source { table: table.into(), columns: None, start_ns: None, end_ns: None }
}

fn col(c: &str) -> Expr {
    Expr::Column(c.into())
}

// ------------------------------------------------------------------ constructs

#[test]
fn dataframe_positional_and_keyword_with_select() {
    assert_eq!(plan("import px\npx.display(px.DataFrame('http_events'))"), source("http_events"));
    let p = plan("import px\npx.display(px.DataFrame(table='http_events', select=['req_path', 'latency']))");
    assert_eq!(
        p,
        Plan::Source {
            table: "http_events".into(),
            columns: Some(vec!["req_path".into(), "latency".into()]),
            start_ns: None,
            end_ns: None
        }
    );
    assert_eq!(
        cols("import px\npx.display(px.DataFrame('http_events', select=['req_path', 'latency']))"),
        vec![("req_path".into(), PxType::String), ("latency".into(), PxType::Int64)]
    );
}

#[test]
fn time_arguments_resolve_against_now() {
    let p = plan("import px\npx.display(px.DataFrame('http_events', start_time='-5m', end_time='-30s'))");
    assert_eq!(
        p,
        Plan::Source {
            table: "http_events".into(),
            columns: None,
            start_ns: Some(NOW - 5 * MIN),
            end_ns: Some(NOW - 30_000_000_000)
        }
    );
    let p = plan("import px\npx.display(px.DataFrame('http_events', start_time=px.now() - px.hours(1), end_time=123))");
    assert_eq!(
        p,
        Plan::Source { table: "http_events".into(), columns: None, start_ns: Some(NOW - 60 * MIN), end_ns: Some(123) }
    );
    let p = plan(
        "import px\nt = px.now() - px.days(1) + px.milliseconds(2) - px.microseconds(3)\npx.display(px.DataFrame('http_events', start_time=t))",
    );
    let Plan::Source { start_ns, .. } = p else { panic!("source") };
    assert_eq!(start_ns, Some(NOW - 86_400_000_000_000 + 2_000_000 - 3_000));
}

#[test]
fn filter_by_subscript_and_method() {
    let expected = Plan::Filter {
        input: Box::new(source("http_events")),
        predicate: Expr::Binary {
            op: BinaryOp::GtE,
            left: Box::new(col("resp_status")),
            right: Box::new(Expr::Literal(Literal::Int(400))),
        },
    };
    assert_eq!(plan(&src("px.display(df[df.resp_status >= 400])")), expected);
    assert_eq!(plan(&src("px.display(df.filter(df['resp_status'] >= 400))")), expected);
}

#[test]
fn boolean_operators() {
    let p = plan(&src("px.display(df[(df.resp_status == 200) & ~(df.req_method == 'GET') | (not df.encrypted)])"));
    let Plan::Filter { predicate, .. } = p else { panic!("filter") };
    let Expr::Binary { op: BinaryOp::Or, left, right } = predicate else { panic!("or: {predicate:?}") };
    assert!(matches!(*left, Expr::Binary { op: BinaryOp::And, .. }));
    assert!(matches!(*right, Expr::Not(_)));
    let p = plan(&src("px.display(df[df.resp_status == 200 and df.latency > 5 or df.encrypted])"));
    assert!(matches!(p, Plan::Filter { predicate: Expr::Binary { op: BinaryOp::Or, .. }, .. }));
    let p = plan(&src("px.display(df[200 <= df.resp_status < 300])"));
    assert!(matches!(p, Plan::Filter { predicate: Expr::Binary { op: BinaryOp::And, .. }, .. }));
}

#[test]
fn map_by_attribute_and_subscript_and_method() {
    let c = cols(&src(
        "df.ms = df.latency / 1000000\ndf['ok'] = df.resp_status < 400\ndf = df.map('x', df.latency * 2 % 7)\npx.display(df[['ms', 'ok', 'x']])",
    ));
    assert_eq!(c, vec![("ms".into(), PxType::Float64), ("ok".into(), PxType::Boolean), ("x".into(), PxType::Int64)]);
    // Division casts both sides to FLOAT64.
    let p = plan(&src("df.ms = df.latency / 2\npx.display(df)"));
    let Plan::Map { expr, column, .. } = p else { panic!("map") };
    assert_eq!(column, "ms");
    assert_eq!(
        expr,
        Expr::Binary {
            op: BinaryOp::Div,
            left: Box::new(Expr::Cast { expr: Box::new(col("latency")), to: PxType::Float64 }),
            right: Box::new(Expr::Literal(Literal::Float(2.0))),
        }
    );
}

#[test]
fn replacing_a_column_keeps_its_position() {
    let c = cols(
        "import px\ndf = px.DataFrame('http_events', select=['req_path', 'latency', 'resp_status'])\ndf.latency = df.latency / 1000\npx.display(df)",
    );
    assert_eq!(c[1], ("latency".into(), PxType::Float64));
    assert_eq!(c.len(), 3);
}

#[test]
fn keep_columns_list_and_tuple() {
    let expected =
        Plan::Project { input: Box::new(source("http_events")), columns: vec!["req_path".into(), "latency".into()] };
    assert_eq!(plan(&src("px.display(df[['req_path', 'latency']])")), expected);
    assert_eq!(plan(&src("px.display(df['req_path', 'latency'])")), expected);
}

#[test]
fn drop_list_and_single() {
    let expected = Plan::Drop { input: Box::new(source("http_events")), columns: vec!["req_body".into()] };
    assert_eq!(plan(&src("px.display(df.drop(['req_body']))")), expected);
    assert_eq!(plan(&src("px.display(df.drop('req_body'))")), expected);
    assert!(!cols(&src("px.display(df.drop('req_body'))")).iter().any(|(n, _)| n == "req_body"));
}

#[test]
fn groupby_agg_single_and_multi_key() {
    let p = plan(&src("px.display(df.groupby('req_path').agg(n=('latency', px.count)))"));
    assert_eq!(
        p,
        Plan::Aggregate {
            input: Box::new(source("http_events")),
            group_by: vec!["req_path".into()],
            aggs: vec![Aggregation { output: "n".into(), func: AggFunc::Count, column: "latency".into() }],
        }
    );
    let c = cols(&src(
        "df.err = df.resp_status >= 400\npx.display(df.groupby(['req_path', 'req_method']).agg(n=('latency', px.count), s=('latency', px.sum), m=('latency', px.mean), lo=('latency', px.min), hi=('time_', px.max), e=('err', px.mean), es=('err', px.sum), p=('latency', px.p99), q=('latency', px.quantiles), a=('req_body', px.any)))",
    ));
    let types: Vec<PxType> = c.iter().map(|(_, t)| *t).collect();
    use PxType::*;
    assert_eq!(
        types,
        vec![String, String, Int64, Int64, Float64, Int64, Time, Float64, Int64, Float64, String, String]
    );
}

#[test]
fn agg_without_groups() {
    let p = plan(&src("px.display(df.agg(n=('latency', px.count)))"));
    assert!(matches!(p, Plan::Aggregate { ref group_by, .. } if group_by.is_empty()));
}

#[test]
fn quantiles_pluck_and_direct_percentiles() {
    let c = cols(&src(
        "s = df.groupby('req_path').agg(q=('latency', px.quantiles), p50=('latency', px.p50), p90=('latency', px.p90))\ns.p99 = px.DurationNanos(px.pluck_float64(s.q, 'p99'))\npx.display(s)",
    ));
    assert_eq!(c.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["req_path", "q", "p50", "p90", "p99"]);
    assert_eq!(c[4].1, PxType::Float64);
}

/// Each output column's semantic type, by name.
fn semantics(src: &str) -> Vec<(String, Option<String>)> {
    ok(src).outputs.remove(0).columns.into_iter().map(|c| (c.name, c.semantic)).collect()
}

#[test]
fn semantic_types_follow_columns_aggregates_casts_and_merges() {
    let st = |v: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
        v.iter().map(|(n, s)| ((*n).to_string(), s.map(str::to_string))).collect()
    };
    assert_eq!(
        semantics(&src("df.ms = df.latency / 1000000
df.lat2 = df.latency + 5
df.b = px.Bytes(df.resp_body_size * 2)
df.p = px.Percent(df.latency / 100)
df.c = px.DurationNanos(5)
df.binned = px.bin(df.latency, 1000)
px.display(df[['latency', 'req_path', 'ms', 'lat2', 'b', 'p', 'c', 'binned']])")),
        st(&[
            ("latency", Some("ST_DURATION_NS")),
            ("req_path", None),
            ("ms", None),
            ("lat2", Some("ST_DURATION_NS")),
            ("b", Some("ST_BYTES")),
            ("p", Some("ST_PERCENT")),
            ("c", None),
            ("binned", Some("ST_DURATION_NS")),
        ])
    );
    assert_eq!(
        semantics(&src(
            "s = df.groupby('req_path').agg(n=('latency', px.count), mean=('latency', px.mean), p99=('latency', px.p99), q=('latency', px.quantiles), qb=('resp_body_size', px.quantiles), b=('resp_body_size', px.sum))
px.display(s)"
        )),
        st(&[
            ("req_path", None),
            ("n", None),
            ("mean", Some("ST_DURATION_NS")),
            ("p99", Some("ST_DURATION_NS")),
            ("q", Some("ST_DURATION_NS_QUANTILES")),
            ("qb", Some("ST_QUANTILES")),
            ("b", Some("ST_BYTES")),
        ])
    );
    assert_eq!(
        semantics(&src("a = df.groupby('req_path').agg(m=('latency', px.max))
b = df.groupby('req_path').agg(m=('resp_body_size', px.max))
j = a.merge(b, how='inner', left_on='req_path', right_on='req_path', suffixes=['_l', '_r'])
px.display(j.rename({'m_l': 'slowest'}))")),
        st(&[
            ("req_path_l", None),
            ("slowest", Some("ST_DURATION_NS")),
            ("req_path_r", None),
            ("m_r", Some("ST_BYTES")),
        ])
    );
}

#[test]
fn head_default_and_explicit() {
    assert_eq!(plan(&src("px.display(df.head(7))")), Plan::Limit { input: Box::new(source("http_events")), n: 7 });
    assert_eq!(plan(&src("px.display(df.head(n=3))")), Plan::Limit { input: Box::new(source("http_events")), n: 3 });
    assert_eq!(plan(&src("px.display(df.head())")), Plan::Limit { input: Box::new(source("http_events")), n: 5 });
}

#[test]
fn display_names_debug_and_cols() {
    let p = ok(&src(
        "px.display(df)\npx.display(df, 'second')\npx.display(df, name='third', cols=['latency'])\npx.debug(df, 'dbg')",
    ));
    let names: Vec<&str> = p.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["output", "second", "third", "_dbg"]);
    assert_eq!(p.outputs[2].columns.len(), 1);
}

#[test]
fn scalar_functions_type_check() {
    let c = cols(&src("df.a = px.select(df.resp_status >= 400, 'err', 'ok')
df.b = px.bin(df.latency, 1000)
df.c = px.bin(df.time_, px.seconds(10))
df.d = px.contains(df.req_path, '/api')
df.e = px.abs(df.latency - 5)
df.f = px.floor(df.latency / 3)
df.g = px.ceil(df.latency)
df.h = px.length(df.req_path)
df.i = px.tolower(df.req_method)
df.j = px.toupper(df.req_method)
df.k = px.equals_any(df.resp_status, [200, 201])
df.l = px.int64_to_time(df.latency)
df.m = px.time_to_int64(df.time_)
df.n = px.substring(df.req_path, 0, 4)
df.o = px.regex_match('/api/.*', df.req_path)
df.p = px.Percent(px.Bytes(px.Service(df.req_body_size)))
df.q = px.pluck(df.req_headers, 'Host')
df.r = px.pluck_int64(df.req_headers, 'n')
df.s = px.select(df.encrypted, 1, 2.5)
df.t = px.bin(df.latency / 7, 0.5)
px.display(df[['a','b','c','d','e','f','g','h','i','j','k','l','m','n','o','p','q','r','s','t']])"));
    use PxType::*;
    let types: Vec<PxType> = c.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        types,
        vec![
            String, Int64, Time, Boolean, Int64, Float64, Float64, Int64, String, String, Boolean, Time, Int64, String,
            Boolean, Int64, String, Int64, Float64, Float64
        ]
    );
}

#[test]
fn time_arithmetic_is_normalized() {
    let p = plan(&src("df = df[df.time_ > px.now() - px.minutes(1)]\npx.display(df)"));
    let Plan::Filter { predicate, .. } = p else { panic!("filter") };
    assert_eq!(
        predicate,
        Expr::Binary {
            op: BinaryOp::Gt,
            left: Box::new(col("time_")),
            right: Box::new(Expr::Literal(Literal::Time(NOW - MIN)))
        }
    );
    let c = cols(&src("df.age = px.now() - df.time_\ndf.later = df.time_ + 5\npx.display(df[['age', 'later']])"));
    assert_eq!(c, vec![("age".into(), PxType::Int64), ("later".into(), PxType::Time)]);
}

#[test]
fn user_function_called_at_top_level() {
    let p = ok(
        "import px\n\ndef f(start_time: str, n: int = 10):\n    '''doc'''\n    df = px.DataFrame('http_events', start_time=start_time)\n    return df.head(n)\n\npx.display(f('-5m'), 'a')\npx.display(f(start_time='-1m', n=2), 'b')\n",
    );
    assert_eq!(p.outputs.len(), 2);
    assert!(matches!(p.outputs[1].plan, Plan::Limit { n: 2, .. }));
}

#[test]
fn settings_line_sets_max_rows() {
    let script = format!("#px:set max_output_rows_per_table=42\n{}", src("px.display(df)"));
    assert_eq!(ok(&script).max_output_rows_per_table, Some(42));
    assert_eq!(ok(&src("px.display(df)")).max_output_rows_per_table, None);
}

#[test]
fn closure_catalog_works() {
    let cat = |name: &str| loupe_schema::table(name).map(|t| t.arrow_schema());
    let p = compile("import px\npx.display(px.DataFrame('http_events'))", &cat, &CompileOptions { now_ns: 0 });
    assert!(p.is_ok());
}

// ------------------------------------------------------------------ errors

#[test]
fn error_syntax() {
    let (l, c, m) = err("import px\ndf = px.DataFrame('http_events'\npx.display(df)\n");
    assert!(m.starts_with("syntax error"), "{m}");
    assert_eq!((l, c), (3, 1), "{m}");
    let (l, c, _) = err("import px\ndf = = 1\n");
    assert_eq!((l, c), (2, 6));
}

#[test]
fn error_unknown_table() {
    let d = compile("import px\ndf = px.DataFrame('http_event')\n", &SchemaCatalog, &CompileOptions { now_ns: 0 })
        .expect_err("fails");
    assert_eq!((d[0].line, d[0].column), (2, 19));
    assert_eq!(d[0].message, "unknown table `http_event`");
    assert_eq!(d[0].helps, vec!["did you mean `http_events`?".to_string()]);
}

#[test]
fn error_unknown_column_attribute_and_subscript() {
    let s = src("df = df[df.resp_statu >= 400]\n");
    let d = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: 0 }).expect_err("fails");
    assert_eq!((d[0].line, d[0].column, d[0].span.len()), (3, 12, 10));
    assert_eq!(d[0].message, "unknown column `resp_statu` in table `http_events`");
    assert_eq!(d[0].helps, vec!["did you mean `resp_status`?".to_string()]);
    assert!(d[0].render(&s, "script.pxl").contains(" --> script.pxl:3:12\n"));
    assert_eq!(err(&src("x = df['latencyy']\n")), (3, 8, "unknown column `latencyy` in table `http_events`".into()));
    assert_eq!(err(&src("x = df[['latency', 'nope']]\n")).0, 3);
    assert_eq!(err(&src("x = df.groupby('nope')\n")).1, 16);
}

#[test]
fn error_wrong_operand_types() {
    let (l, c, m) = err(&src("df.x = df.req_path + 1\n"));
    assert_eq!((l, c), (3, 20), "{m}");
    assert_eq!(m, "cannot combine STRING and INT64 with `+`");
    let (l, c, m) = err(&src("df = df[df.req_path == 200]\n"));
    assert_eq!((l, c), (3, 21), "{m}");
    assert_eq!(m, "cannot compare STRING and INT64 with `==`");
    let (l, c, _) = err(&src("df = df[df.encrypted & 1]\n"));
    assert_eq!((l, c), (3, 22));
}

#[test]
fn error_filter_needs_boolean() {
    assert_eq!(
        err(&src("df = df[df.latency + 1]\n")),
        (3, 9, "filter expects a BOOLEAN expression, found INT64".into())
    );
}

#[test]
fn error_unknown_px_function() {
    let d = compile(&src("df.x = px.tolowr(df.req_path)\n"), &SchemaCatalog, &CompileOptions { now_ns: 0 })
        .expect_err("fails");
    assert_eq!((d[0].line, d[0].column), (3, 11));
    assert_eq!(d[0].message, "unknown px function `px.tolowr`");
    assert_eq!(d[0].helps, vec!["did you mean `px.tolower`?".to_string()]);
}

#[test]
fn error_wrong_function_argument_types() {
    assert_eq!(
        err(&src("df.x = px.length(df.latency)\n")),
        (3, 18, "argument 1 of `px.length` must be STRING, found INT64".into())
    );
    assert_eq!(err(&src("df.x = px.select(df.latency, 1, 2)\n")).1, 18);
    assert_eq!(err(&src("df.x = px.length(df.req_path, 1)\n")).1, 31);
}

#[test]
fn error_wrong_agg_spec() {
    assert_eq!(
        err(&src("s = df.groupby('req_path').agg(n='latency')\n")),
        (3, 34, "wrong aggregate spec for `n`".into())
    );
    assert_eq!(err(&src("s = df.groupby('req_path').agg(n=('latency', 5))\n")).1, 46);
    assert_eq!(
        err(&src("s = df.groupby('req_path').agg(n=('latency', px.tolower))\n")),
        (3, 46, "`px.tolower` is not an aggregate function".into())
    );
    assert_eq!(
        err(&src("s = df.groupby('req_path').agg(n=('req_path', px.mean))\n")),
        (3, 47, "`px.mean` does not accept STRING column `req_path`".into())
    );
    assert_eq!(err(&src("s = df.groupby('req_path').agg(n=(1, px.mean))\n")).1, 35);
    assert_eq!(err(&src("s = df.agg()\n")).1, 5);
    assert_eq!(err(&src("s = df.agg(n=('nope', px.count))\n")).1, 15);
}

#[test]
fn error_aggregate_called_as_scalar() {
    assert_eq!(err(&src("df.x = px.count(df.latency)\n")).1, 11);
}

#[test]
fn ctx_keys_become_upid_functions() {
    let p = plan(&src(
        "df.svc = df.ctx['service']\ndf.pid = df.ctx['pid']\nkey = 'node'\ndf[key] = df.ctx[key]\npx.display(df)",
    ));
    let upid = || vec![col("upid")];
    let Plan::Map { input, column, expr } = p else { panic!("not a map") };
    assert_eq!((column.as_str(), expr), ("node", Expr::Call { func: ScalarFunc::UpidToNodeName, args: upid() }));
    let Plan::Map { input, column, expr } = *input else { panic!("not a map") };
    assert_eq!((column.as_str(), expr), ("pid", Expr::Call { func: ScalarFunc::UpidToPid, args: upid() }));
    let Plan::Map { column, expr, .. } = *input else { panic!("not a map") };
    assert_eq!((column.as_str(), expr), ("svc", Expr::Call { func: ScalarFunc::UpidToServiceName, args: upid() }));
}

#[test]
fn ctx_on_a_table_keyed_by_pod_reads_pod_id() {
    let p = plan("import px\ndf = px.DataFrame('network_stats')\ndf.pod = df.ctx['pod']\npx.display(df)");
    let Plan::Map { expr, .. } = p else { panic!("not a map") };
    assert_eq!(expr, Expr::Call { func: ScalarFunc::PodIdToPodName, args: vec![col("pod_id")] });
    assert_eq!(
        err("import px\ndf = px.DataFrame('network_stats')\ndf.p = df.ctx['pid']\n"),
        (3, 15, "`ctx['pid']` needs a `upid` column, which table `network_stats` does not have".into())
    );
}

#[test]
fn error_ctx_keys() {
    assert_eq!(err(&src("df.svc = df.ctx['servce']\n")), (3, 17, "unknown `ctx` key `servce`".into()));
    assert_eq!(err(&src("df.c = df.ctx['cmdlines']\n")), (3, 15, "unknown `ctx` key `cmdlines`".into()));
    assert_eq!(
        err(&src("df = df[['latency']]\ndf.p = df.ctx['pod']\n")),
        (4, 15, "`ctx['pod']` needs a `upid` column, which table `http_events` does not have".into())
    );
    assert_eq!(err(&src("x = df.ctx\n")), (3, 8, "`ctx` is read by key: `df.ctx['pod']`".into()));
    assert_eq!(
        err(&src("df.pod = px.pod_id_to_start_time(df.upid)\n")),
        (3, 13, "`px.pod_id_to_start_time` is a Kubernetes metadata function Loupe does not answer yet".into())
    );
}

#[test]
fn error_undefined_name_and_missing_import() {
    let d = compile("df = px.DataFrame('http_events')\n", &SchemaCatalog, &CompileOptions { now_ns: 0 })
        .expect_err("fails");
    assert_eq!((d[0].line, d[0].column), (1, 6));
    assert_eq!(d[0].helps, vec!["add `import px` at the top of the script".to_string()]);
    assert_eq!(err(&src("px.display(dff)\n")), (3, 12, "name `dff` is not defined".into()));
}

#[test]
fn error_bad_time_argument() {
    assert_eq!(
        err("import px\ndf = px.DataFrame('http_events', start_time='-5x')\n"),
        (2, 45, "invalid start_time `-5x`".into())
    );
    assert_eq!(err("import px\ndf = px.DataFrame('http_events', end_time=px.now)\n").1, 43);
}

#[test]
fn error_unexpected_and_missing_arguments() {
    assert_eq!(
        err("import px\ndf = px.DataFrame('http_events', strat_time='-5m')\n"),
        (2, 34, "unexpected argument `strat_time` to `px.DataFrame`".into())
    );
    assert_eq!(err("import px\ndf = px.DataFrame()\n"), (2, 6, "`px.DataFrame` is missing argument `table`".into()));
}

#[test]
fn error_unsupported_syntax_and_methods() {
    assert_eq!(err(&src("for x in [1]:\n    pass\n")), (3, 1, "`for` loops are not supported in PxL".into()));
    assert_eq!(err(&src("x = df.rolling(5)\n")), (3, 8, "`df.rolling` is not supported yet".into()));
    assert_eq!(err(&src("x = df.hed(3)\n")).1, 8);
}

#[test]
fn error_no_output() {
    assert_eq!(err(&src("")).0, 1);
    let d = compile("import px\ndef f():\n    return 1\n", &SchemaCatalog, &CompileOptions { now_ns: 0 })
        .expect_err("fails");
    assert!(d[0].helps[0].contains("call a function"), "{:?}", d[0].helps);
}

#[test]
fn error_bad_setting() {
    assert_eq!(
        err("#px:set max_output_rows_per_table=lots\nimport px\n"),
        (1, 1, "invalid max_output_rows_per_table `lots`: expected a non-negative integer".into())
    );
}

#[test]
fn error_duplicate_output() {
    assert_eq!(
        err(&src("px.display(df, 'a')\npx.display(df, 'a')\n")),
        (4, 16, "output `a` is displayed twice".into())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        let _ = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW });
    }

    #[test]
    fn pxl_shaped_text_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("import px\n"), Just("df = px.DataFrame('http_events')\n"), Just("df["), Just("]"), Just("df."),
        Just("resp_status"), Just(" >= "), Just("400"), Just("px.display(df)\n"), Just("("), Just(")"),
        Just("'"), Just(","), Just("\n"), Just("px."), Just("groupby('req_path').agg(n=('latency', px.count))"),
        Just(" + "), Just(" / "), Just("é"), Just("def f(a):\n    return a\n"), Just("f(df)"),
    ], 0..30)) {
        let s: String = parts.concat();
        if let Err(d) = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW }) {
            for d in d {
                let _ = d.render(&s, "p.pxl");
            }
        }
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let (l, c, m) = err(&format!("import px\nx = {}1{}\n", "(".repeat(100), ")".repeat(100)));
    assert_eq!((l, c, m.as_str()), (2, 69, "brackets nest more than 64 levels deep"));
    for depth in [100, 1_000, 10_000] {
        let s = format!("import px\nx = {}1{}\n", "(".repeat(depth), ")".repeat(depth));
        let _ = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW });
        let s = format!("import px\nx = {}1\n", "-".repeat(depth));
        let _ = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW });
        let s = format!("import px\nx = 1{}\n", " + 1".repeat(depth));
        let _ = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW });
        let s = format!("import px\nx = 1{}\n", " and 1".repeat(depth));
        let _ = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW });
        let s = format!("import px\nx = 1{}\n", " < 1".repeat(depth));
        let _ = compile(&s, &SchemaCatalog, &CompileOptions { now_ns: NOW });
    }
}

/// The calls a bundled script's vis spec makes with every variable at its default (global functions, then
/// widgets that call a function), as `px run` makes them.
fn default_calls(vis: &str) -> Vec<ExecFunc> {
    let vis: serde_json::Value = serde_json::from_str(vis).expect("vis.json is JSON");
    let default_of = |var: &str| {
        let vars = vis["variables"].as_array().into_iter().flatten();
        let v = vars.into_iter().find(|v| v["name"] == var).unwrap_or_else(|| panic!("undeclared variable {var}"));
        v["defaultValue"].as_str().unwrap_or_else(|| panic!("variable {var} has no default")).to_string()
    };
    let call = |f: &serde_json::Value, output: String| ExecFunc {
        name: f["name"].as_str().expect("func name").to_string(),
        args: f["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let value =
                    a["variable"].as_str().map_or_else(|| a["value"].as_str().expect("value").to_string(), default_of);
                (a["name"].as_str().expect("arg name").to_string(), value)
            })
            .collect(),
        output_prefix: output,
    };
    let globals = vis["globalFuncs"].as_array().into_iter().flatten();
    let mut out: Vec<ExecFunc> =
        globals.map(|g| call(&g["func"], g["outputName"].as_str().expect("outputName").to_string())).collect();
    for (i, w) in vis["widgets"].as_array().into_iter().flatten().enumerate() {
        if w["func"].is_object() {
            out.push(call(&w["func"], w["name"].as_str().map_or_else(|| format!("widget_{i}"), str::to_string)));
        }
    }
    out
}

#[test]
fn every_bundled_script_compiles_against_the_schema_catalog() {
    assert!(bundled::scripts().len() >= 25, "{} bundled scripts", bundled::scripts().len());
    for s in bundled::scripts() {
        // A function-form script's outputs are its vis spec's calls (the engine's `bundled` golden test runs
        // them over a data set); a top-level script displays one table.
        let calls = s.vis.map(default_calls).unwrap_or_default();
        let program = compile_with_funcs(s.pxl, &SchemaCatalog, &CompileOptions { now_ns: NOW }, &calls)
            .unwrap_or_else(|d| {
                panic!("{}: {}", s.name, d.iter().map(|d| d.render(s.pxl, s.name)).collect::<String>())
            });
        assert_eq!(program.outputs.len(), calls.len().max(1), "{}", s.name);
    }
}

#[test]
fn perf_flamegraph_returns_folded_stacks_for_the_flamegraph_widget() {
    let s = bundled::get("px/perf_flamegraph").expect("bundled");
    let vis = s.vis.expect("function-form");
    assert!(vis.contains("\"stacktraces\"") && vis.contains("StackTraceFlameGraph"), "{vis}");
    let funcs = [ExecFunc {
        name: "stacktraces".into(),
        args: vec![("start_time".into(), "-5m".into()), ("cmd".into(), String::new())],
        output_prefix: "Flamegraph".into(),
    }];
    let program = compile_with_funcs(s.pxl, &SchemaCatalog, &CompileOptions { now_ns: NOW }, &funcs)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(s.pxl, s.name)).collect::<String>()));
    assert_eq!(program.outputs.len(), 1);
    let names: Vec<String> = program.outputs[0].columns.iter().map(|c| c.name.clone()).collect();
    // What the widget reads (stacktraceColumn, countColumn, pidColumn) and `px run -o svg` draws.
    for column in ["stack_trace", "count", "pid"] {
        assert!(names.iter().any(|n| n == column), "no {column} in {names:?}");
    }
}

// ------------------------------------------------------------------ exec_funcs (vis specs)

const FORM_B: &str = "import px\n\ndef rows(start_time: str, n: int, slow: float = 0.5, on: bool = True):\n    df = px.DataFrame('http_events', start_time=start_time)\n    df = df[df.latency > slow]\n    df.on = on\n    return df.head(n)\n";

/// (function, [(parameter, value)], output name).
type Call<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

fn exec(calls: &[Call]) -> Result<Program, Vec<Diagnostic>> {
    let funcs: Vec<ExecFunc> = calls
        .iter()
        .map(|(name, args, out)| ExecFunc {
            name: name.to_string(),
            args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            output_prefix: out.to_string(),
        })
        .collect();
    compile_with_funcs(FORM_B, &SchemaCatalog, &CompileOptions { now_ns: NOW }, &funcs)
}

#[test]
fn exec_funcs_call_functions_with_typed_arguments_and_defaults() {
    let p = exec(&[
        ("rows", &[("start_time", "-10m"), ("n", "3")], "Table"),
        ("rows", &[("start_time", "-1m"), ("n", "1"), ("slow", "2"), ("on", "false")], "widget_1"),
    ])
    .unwrap_or_else(|d| panic!("{d:?}"));
    let names: Vec<&str> = p.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["Table", "widget_1"]);
    let filtered = |start: i64, slow: f64, on: bool| Plan::Map {
        input: Box::new(Plan::Filter {
            input: Box::new(Plan::Source {
                table: "http_events".into(),
                columns: None,
                start_ns: Some(NOW - start * MIN),
                end_ns: None,
            }),
            predicate: Expr::Binary {
                op: BinaryOp::Gt,
                left: Box::new(Expr::Cast { expr: Box::new(col("latency")), to: PxType::Float64 }),
                right: Box::new(Expr::Literal(Literal::Float(slow))),
            },
        }),
        column: "on".into(),
        expr: Expr::Literal(Literal::Bool(on)),
    };
    assert_eq!(p.outputs[0].plan, Plan::Limit { input: Box::new(filtered(10, 0.5, true)), n: 3 });
    assert_eq!(p.outputs[1].plan, Plan::Limit { input: Box::new(filtered(1, 2.0, false)), n: 1 });
}

#[test]
fn exec_funcs_errors_name_the_function_and_argument() {
    let e = |calls: &[Call]| {
        let d = exec(calls).expect_err("must fail");
        (d[0].line, d[0].column, d[0].message.clone())
    };
    assert_eq!(e(&[("row", &[], "t")]), (1, 1, "the vis spec calls `row`, which the script does not define".into()));
    assert_eq!(
        e(&[("rows", &[("start_time", "-5m")], "t")]),
        (3, 5, "`rows` is missing argument `n`: the vis spec gives no value".into())
    );
    assert_eq!(
        e(&[("rows", &[("start_time", "-5m"), ("n", "x")], "t")]),
        (3, 27, "argument `n` of `rows` must be an integer, found `x`".into())
    );
    assert_eq!(
        e(&[("rows", &[("start_time", "-5m"), ("n", "1"), ("on", "maybe")], "t")]),
        (3, 54, "argument `on` of `rows` must be true or false, found `maybe`".into())
    );
    assert_eq!(
        e(&[("rows", &[("start_time", "-5m"), ("n", "1"), ("x", "1")], "t")]),
        (3, 5, "`rows` has no parameter `x` (given by the vis spec)".into())
    );
    assert_eq!(
        e(&[("rows", &[("start_time", "-5m"), ("n", "1")], "t"), ("rows", &[("start_time", "-5m"), ("n", "1")], "t")]),
        (3, 5, "output `t` is displayed twice".into())
    );
}

#[test]
fn a_function_that_returns_no_dataframe_is_refused_for_the_vis_spec() {
    let src = "import px\ndef f():\n    px.display(px.DataFrame('http_events'))\n";
    let funcs = [ExecFunc { name: "f".into(), args: vec![], output_prefix: "o".into() }];
    let d = compile_with_funcs(src, &SchemaCatalog, &CompileOptions { now_ns: NOW }, &funcs).expect_err("fails");
    assert_eq!((d[0].line, d[0].column), (2, 5));
    assert_eq!(d[0].message, "`f` must return a dataframe for the vis spec, found `None`");
}

// ------------------------------------------------------------------ merge, append, rename

#[test]
fn merge_suffixes_names_both_sides_have() {
    let p = ok(&src(
        "a = df.groupby('req_path').agg(n=('latency', px.count))\nb = df.groupby('req_path').agg(m=('latency', px.max))\npx.display(a.merge(b, how='left', left_on='req_path', right_on='req_path', suffixes=['', '_r']))",
    ));
    let names: Vec<&str> = p.outputs[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["req_path", "n", "req_path_r", "m"]);
    let Plan::Join { how, left_on, right_on, .. } = &p.outputs[0].plan else { panic!("not a join") };
    assert_eq!(
        (*how, left_on.as_slice(), right_on.as_slice()),
        (JoinHow::Left, &["req_path".to_string()][..], &["req_path_r".to_string()][..])
    );
    let names = |how: &str| -> Vec<String> {
        let p = ok(&src(&format!(
            "px.display(df.merge(df, how='{how}', left_on='upid', right_on='upid')[['upid_x', 'upid_y']])"
        )));
        p.outputs[0].columns.iter().map(|c| c.name.clone()).collect()
    };
    assert_eq!(names("outer"), ["upid_x", "upid_y"]);
}

#[test]
fn merge_append_rename_errors() {
    assert_eq!(
        err(&src("px.display(df.merge(df, how='cross', left_on='upid', right_on='upid'))")),
        (3, 29, "`how` must be inner, left, right or outer, found `cross`".into())
    );
    assert_eq!(
        err(&src("px.display(df.merge(df, how='inner', left_on='upid'))")),
        (3, 12, "`df.merge` is missing argument `right_on`".into())
    );
    assert_eq!(
        err(&src("px.display(df.merge(df, how='inner', left_on='upid', right_on='latency'))")),
        (3, 63, "cannot join STRING column `upid` with INT64 column `latency`".into())
    );
    assert_eq!(
        err(&src("px.display(df.merge(df, how='inner', left_on='upid', right_on='upid', suffixes=['', '']))")),
        (3, 80, "the merge outputs column `time_` twice: choose other suffixes".into())
    );
    assert_eq!(
        err(&src("px.display(df.append(df[['upid']]))")),
        (3, 22, "`df.append` needs frames with the same columns".into())
    );
    assert_eq!(
        err(&src("px.display(df.append(1))")),
        (3, 22, "`df.append` takes dataframes, found a INT64 constant".into())
    );
    assert_eq!(
        err(&src("px.display(df.rename({'nope': 'x'}))")),
        (3, 23, "unknown column `nope` in table `http_events`".into())
    );
    assert_eq!(
        err(&src("px.display(df.rename({'upid': 'latency'}))")),
        (3, 31, "column `latency` already exists".into())
    );
    assert_eq!(
        err(&src("x = {'a': 1}")),
        (3, 5, "a dict literal is only accepted as the mapping of `df.rename({'old': 'new'})`".into())
    );
}

// ------------------------------------------------------------------ Pixie script idioms

#[test]
fn pixie_idioms_compile() {
    // A missing comma between keyword arguments (Pixie's parser takes it), `px.Pod = str`, an aggregate
    // column held in a variable, distinct keys with `.agg()`, string constants joined with `+`.
    let p = ok(&src(
        "px.Pod = str\ncolumn = 'lat' + 'ency'\ns = df.groupby('req_path').agg(n=(column, px.count)\n    m=('latency', px.max))\npx.display(s)\npx.display(df.groupby(['req_path', 'req_method']).agg(), 'keys')",
    ));
    let names: Vec<Vec<&str>> = p.outputs.iter().map(|o| o.columns.iter().map(|c| c.name.as_str()).collect()).collect();
    assert_eq!(names, vec![vec!["req_path", "n", "m"], vec!["req_path", "req_method"]]);
    let Plan::Aggregate { aggs, .. } = &p.outputs[0].plan else { panic!("not an aggregate") };
    assert_eq!(aggs[0].column, "latency");
    // Other syntax errors still stop the script.
    assert_eq!(err("import px\nx = (1 +\n").2, "syntax error: unexpected EOF while parsing");
}

#[test]
fn script_reference_takes_a_dict_of_arguments() {
    let p = plan(&src(
        "df.link = px.script_reference(df.req_path, 'px/pod', {'start_time': '-5m', 'pod': df.req_path})\npx.display(df[['link']])",
    ));
    let Plan::Project { input, .. } = p else { panic!("not a projection") };
    let Plan::Map { expr, .. } = *input else { panic!("not a map") };
    let s = |v: &str| Expr::Literal(Literal::String(v.into()));
    assert_eq!(
        expr,
        Expr::Call {
            func: ScalarFunc::ScriptReference,
            args: vec![col("req_path"), s("px/pod"), s("start_time"), s("-5m"), s("pod"), col("req_path")]
        }
    );
    assert_eq!(
        err(&src("df.l = px.script_reference(df.req_path, 'px/pod', ['x'])")),
        (3, 51, "argument 3 of `px.script_reference` must be a dict literal of arguments".into())
    );
}

#[test]
fn every_failing_statement_reports_once() {
    let script = "import px\ndf = px.DataFrame('http_event')\ndf.x = df.latency * 2\npx.display(df)\nok = px.DataFrame('http_events')\nok.y = ok.nope\npx.display(ok.head(1))\npx.display(ok, 'o2', cols=['zzz'])\n";
    let d = compile(script, &SchemaCatalog, &CompileOptions { now_ns: NOW }).expect_err("fails");
    let got: Vec<(u32, u32, &str)> = d.iter().map(|d| (d.line, d.column, d.message.as_str())).collect();
    assert_eq!(
        got,
        vec![(2, 19, "unknown table `http_event`"), (6, 11, "unknown column `nope` in table `http_events`"),]
    );
}

#[test]
fn source_functions_are_frames_with_their_columns_and_checked_arguments() {
    let p = plan("import px\npx.display(px.GetAgentStatus(False))\n");
    assert_eq!(p, Plan::Udtf { func: Udtf::AgentStatus, args: vec![Literal::Bool(false)] });
    let c = cols("import px\npx.display(px._HeapGrowthStacks(3))\n");
    assert_eq!(c, vec![("asid".into(), PxType::Int64), ("heap".into(), PxType::String)]);
    assert_eq!(plan("import px\npx.display(px.GetSchemas())\n"), Plan::Udtf { func: Udtf::Schemas, args: vec![] });
    assert_eq!(
        err("import px\npx.display(px.GetAgentStatus('x'))\n"),
        (2, 30, "`include_kelvin` of `px.GetAgentStatus` must be a BOOLEAN constant, found STRING".into())
    );
    assert_eq!(
        err("import px\npx.display(px.GetTables(1))\n"),
        (2, 25, "`px.GetTables` takes at most 0 arguments".into())
    );
}

#[test]
fn operator_functions_and_format_duration() {
    assert_eq!(
        plan(&src("px.display(df[px.equal(df.resp_status, 200)])\n")),
        plan(&src("px.display(df[df.resp_status == 200])\n"))
    );
    assert_eq!(
        plan(&src("df.x = px.add(df.latency, 1.5)\npx.display(df)\n")),
        plan(&src("df.x = df.latency + 1.5\npx.display(df)\n"))
    );
    assert_eq!(
        err(&src("df.x = px.equal(df.req_path, 1)\npx.display(df)\n")),
        (3, 11, "cannot compare STRING and INT64 with `equal`".into())
    );
    let p = plan(&src("df.w = px.format_duration(2 * px.parse_duration('-5m'))\npx.display(df)\n"));
    let Plan::Map { expr, .. } = p else { panic!("{p:?}") };
    assert_eq!(expr, Expr::Literal(Literal::String("-10m".into())));
}

#[test]
fn pxviews_is_imported_and_its_functions_called_like_pixies() {
    let pre = "import px\nimport pxviews\n";
    let c = cols(&format!("{pre}px.display(pxviews.pod_resource_stats('-5m', px.now()))\n"));
    let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "time_",
            "pod_id",
            "pod",
            "service",
            "node",
            "namespace",
            "container_count",
            "pod_start_time",
            "pod_status",
            "cpu_usage",
            "rss",
            "vsize",
            "actual_disk_read_throughput",
            "actual_disk_write_throughput",
            "total_disk_read_throughput",
            "total_disk_write_throughput"
        ]
    );
    // Keyword arguments, a time for `start_time`, and `ctx` on the pod-keyed result.
    let p = format!(
        "{pre}df = pxviews.inbound_http_summary(start_time=px.now() + px.parse_duration('-5m'), end_time=px.now())\n\
         df.svc = df.ctx['service']\npx.display(df)\n"
    );
    assert!(cols(&p).iter().any(|(n, t)| n == "svc" && *t == PxType::String));
    assert_eq!(
        err(&format!("{pre}px.display(pxviews.pod_resource_stat('-5m', px.now()))\n")),
        (3, 20, "module `pxviews` has no function `pod_resource_stat`".into())
    );
    assert_eq!(
        err(&format!("{pre}px.display(pxviews.http_graph('-5m'))\n")),
        (3, 12, "`pxviews.http_graph` is missing argument `end_time`".into())
    );
    assert_eq!(
        err(&format!("{pre}f = pxviews.http_graph\n")),
        (3, 13, "`pxviews.http_graph` is a function of the module: call it".into())
    );
    // A mistake the module meets (here a window that is not a number) is reported at the caller's call.
    let (line, column, message) =
        err(&format!("{pre}px.display(pxviews.container_process_timeseries('-5m', px.now(), 'x'))\n"));
    assert_eq!((line, column), (3, 12));
    assert!(message.starts_with("`pxviews.container_process_timeseries`: "), "{message}");
    assert_eq!(err("import px\nimport pxtrace\n"), (2, 8, "module `pxtrace` is not supported yet".into()));
}

#[test]
fn lists_concatenate() {
    let keys = "keys = ['req_path']\n";
    assert_eq!(
        plan(&src(&format!("{keys}px.display(df.groupby(keys + ['req_method']).agg(n=('latency', px.count)))\n"))),
        plan(&src("px.display(df.groupby(['req_path', 'req_method']).agg(n=('latency', px.count)))\n"))
    );
    assert_eq!(
        err(&src(&format!("{keys}x = keys + 1\n"))),
        (4, 12, "can only add a list to a list, found a INT64 constant".into())
    );
}
