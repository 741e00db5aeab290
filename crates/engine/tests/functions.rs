//! Every function of the PxL registry (`loupe_pxl::functions::FUNCTIONS`) compiles from its
//! declaration, lowers, runs over real rows and yields the type the checker promised: a function
//! registered without a working lowering fails here (the lowering's `match` is exhaustive, so one
//! cannot be missing; this catches one that is wrong).

use loupe_pxl::PxType;
use loupe_pxl::functions::{FUNCTIONS, ParamType};

use crate::common::{compile, engine, opts};

/// A column expression of type `ty` over the fixture, so the call is not folded away.
fn sample(ty: PxType) -> &'static str {
    match ty {
        PxType::Boolean => "df.resp_status == 200",
        PxType::Int64 => "df.resp_status",
        PxType::Float64 => "df.resp_status * 1.5",
        PxType::String => "df.req_path",
        PxType::Time => "df.time_",
    }
}

/// A constant of type `ty`.
fn constant(ty: PxType) -> &'static str {
    match ty {
        PxType::Boolean => "True",
        PxType::Int64 => "200",
        PxType::Float64 => "2.5",
        PxType::String => "'/a'",
        PxType::Time => "px.now()",
    }
}

#[test]
fn every_registered_function_lowers_and_runs_with_its_declared_type() {
    let e = engine();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let mut ran = Vec::new();
    for f in FUNCTIONS {
        let first = |n: usize| match f.params[n].ty {
            ParamType::OneOf(types) => types[0],
            ParamType::Any | ParamType::ConstantsLike(_) => PxType::Int64,
        };
        let args: Vec<String> = (0..f.params.len())
            .map(|i| match f.params[i].ty {
                ParamType::ConstantsLike(n) => format!("[{}, {}]", constant(first(n)), constant(first(n))),
                _ if f.params[i].constant => constant(first(i)).to_string(),
                _ => sample(first(i)).to_string(),
            })
            .collect();
        let script = format!(
            "import px\ndf = px.DataFrame('http_events')\ndf.out = px.{}({})\npx.display(df[['out']])\n",
            f.name,
            args.join(", ")
        );
        let program = compile(&e, &script);
        let promised = program.outputs[0].columns[0].ty;
        let out = rt.block_on(e.execute_program(&program, &opts())).unwrap_or_else(|err| panic!("{script}: {err}"));
        assert_eq!(out[0].num_rows(), 6, "{script}");
        assert_eq!(out[0].schema.field(0).data_type(), &promised.arrow_type(), "{script}");
        ran.push(f.name);
    }
    assert_eq!(ran.len(), 98, "{ran:?}");
}

#[test]
fn strptime_and_parse_time_agree_and_window_the_rows() {
    let e = engine();
    // Rows are 10..50 s and 600 s old: a window from 5 minutes ago keeps the five recent ones.
    let script = "import px\n\
        df = px.DataFrame('http_events')\n\
        df = df[df.time_ >= px.parse_time('-5m')]\n\
        df.a = px.strptime('2020-07-13 18:02:05', '%Y-%m-%d %H:%M:%S')\n\
        df.b = px.parse_time('2020-07-13 18:02:05 +0000')\n\
        df.c = px.strptime(df.req_path, '%Y')\n\
        df = df.groupby(['a', 'b', 'c']).agg(n=('req_path', px.count))\n\
        px.display(df)\n";
    let out = crate::common::run(&e, script);
    let got = crate::common::lines(&out[0], false);
    assert_eq!(got[3], "| 2020-07-13T18:02:05 | 2020-07-13T18:02:05 |   | 5 |", "{}", got.join("\n"));
    let error = loupe_pxl::compile(
        "import px\nt = px.parse_time('soon')\n",
        &e.catalog(),
        &loupe_pxl::CompileOptions { now_ns: 0 },
    )
    .expect_err("an invalid time");
    let text = error[0].render("import px\nt = px.parse_time('soon')\n", "x.pxl");
    assert!(text.contains("invalid time `soon`") && text.contains("x.pxl:2:"), "{text}");
}
