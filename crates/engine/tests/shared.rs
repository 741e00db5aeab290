//! Repeated subtrees computed once (`shared`): the answers stay exactly those of the tree. (Past the
//! budget for their results, the tree is planned as every other test plans it: see the unit tests.)

use crate::common::{engine, lines, run};

/// Pixie's `kafka_overview` shape: a frame appended to itself, over and over, then grouped; 125 copies
/// of the filtered frame in all, and a second output over a part of the same tree.
const SCRIPT: &str = "import px
def five(d):
    return d.append(d).append(d).append(d).append(d)
df = px.DataFrame('http_events', start_time='-5m')
df = df[df.resp_status == 200]
df.k = df.req_path
many = five(five(five(df)))
px.display(many.groupby('k').agg(n=('k', px.count)), 'many')
px.display(five(five(df)).groupby(['k', 'req_method']).agg(n=('k', px.count)), 'fewer')
";

fn expected() -> Vec<Vec<String>> {
    // Within 5 minutes, status 200: /a twice and /b once, in every copy.
    vec![
        vec![
            "+----+-----+".into(),
            "| k  | n   |".into(),
            "+----+-----+".into(),
            "| /a | 250 |".into(),
            "| /b | 125 |".into(),
            "+----+-----+".into(),
        ],
        vec![
            "+----+------------+----+".into(),
            "| k  | req_method | n  |".into(),
            "+----+------------+----+".into(),
            "| /a | GET        | 50 |".into(),
            "| /b | POST       | 25 |".into(),
            "+----+------------+----+".into(),
        ],
    ]
}

#[test]
fn a_frame_appended_to_itself_many_times_counts_every_copy() {
    let outs = run(&engine(), SCRIPT);
    let got: Vec<Vec<String>> = outs.iter().map(|o| lines(o, true)).collect();
    assert_eq!(got, expected());
}
