//! Every Pixie table Loupe declares can be named by a script: it compiles and answers with the table's columns
//! and, where no source fills the table yet, no rows.

use crate::common::{engine, run};

#[test]
fn every_declared_table_compiles_and_answers() {
    let engine = engine();
    for spec in loupe_schema::all_tables() {
        let script = format!("import px\npx.display(px.DataFrame('{}', start_time='-5m'), 'out')", spec.name);
        let outputs = run(&engine, &script);
        assert_eq!(outputs.len(), 1, "{}", spec.name);
        let columns: Vec<&str> = outputs[0].schema.fields().iter().map(|f| f.name().as_str()).collect();
        let declared: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
        assert_eq!(columns, declared, "{}", spec.name);
        let rows = outputs[0].num_rows();
        // The fixture fills http_events only.
        if spec.name == "http_events" {
            assert!(rows > 0, "http_events has the fixture's rows");
        } else {
            assert_eq!(rows, 0, "{} has no source yet", spec.name);
        }
    }
}
