//! Cron scripts over REST: create (a period or a cron expression, target viziers by name), list, get, patch,
//! results, delete; every refusal with its reason; each change told to the `CronChanges` hook with the org; and
//! nothing of one org visible to another.

use loupe_metastore::{NewCronResult, NewVizier};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Cred, harness_recording_changes, pxl};

const PATH: &str = "/api/v1/cron-scripts";

#[tokio::test]
async fn cron_scripts_are_created_changed_read_and_deleted_by_name() {
    let (h, recorder) = harness_recording_changes().await;
    let a = Cred::Bearer(h.admin_token().await);
    let me = h.call("GET", "/api/v1/auth/me", Some(&a), None).await.expect(200);
    let org: Uuid = me.body["org"]["id"].as_str().expect("org").parse().expect("uuid");
    let new_vizier = NewVizier { org_id: org, name: "prod".into(), cluster_uid: "u".into(), version: "0.1.0".into() };
    let prod = h.state.metastore.create_vizier(new_vizier).await.expect("vizier").id;

    let body = json!({ "name": "errors", "script": pxl("errors"), "frequency_s": 10, "viziers": ["prod"] });
    let created = h.call("POST", PATH, Some(&a), Some(body.clone())).await.expect(201).body;
    assert_eq!(
        (&created["name"], &created["frequency_s"], &created["cron"], &created["viziers"], &created["enabled"]),
        (&json!("errors"), &json!(10), &Value::Null, &json!([prod.to_string()]), &json!(true))
    );
    let nightly = json!({ "name": "nightly", "script": pxl("n"), "cron": "0 3 * * *", "enabled": false });
    let nightly = h.call("POST", PATH, Some(&a), Some(nightly)).await.expect(201).body;
    assert_eq!(
        (&nightly["frequency_s"], &nightly["cron"], &nightly["viziers"]),
        (&Value::Null, &json!("0 3 * * *"), &json!([]))
    );
    assert_eq!(nightly["enabled"], false);

    // Refusals, each with its reason; none reaches the hook.
    let refused = |body: Value, status: u16, why: &'static str| {
        let h = &h;
        let a = &a;
        async move {
            let answer = h.call("POST", PATH, Some(a), Some(body)).await.expect(status);
            assert!(answer.message().contains(why), "{why}: {}", answer.body);
        }
    };
    refused(body.clone(), 409, "already exists").await;
    refused(json!({ "name": "Bad Name", "script": pxl("x"), "frequency_s": 10 }), 400, "[a-z0-9_-]").await;
    refused(json!({ "name": "both", "script": pxl("x"), "frequency_s": 10, "cron": "* * * * *" }), 400, "not both")
        .await;
    refused(json!({ "name": "neither", "script": pxl("x") }), 400, "at least 1 second").await;
    refused(json!({ "name": "c", "script": pxl("x"), "cron": "61 * * * *" }), 400, "outside 0-59").await;
    refused(json!({ "name": "v", "script": pxl("x"), "frequency_s": 10, "viziers": ["nope"] }), 400, "no vizier named")
        .await;
    refused(json!({ "name": "p", "script": "px.display(", "frequency_s": 10 }), 400, "does not compile").await;

    let names: Vec<Value> = h
        .call("GET", PATH, Some(&a), None)
        .await
        .expect(200)
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("errors"), json!("nightly")]);
    let by_id =
        h.call("GET", &format!("{PATH}/{}", created["id"].as_str().expect("id")), Some(&a), None).await.expect(200);
    assert_eq!(by_id.body["name"], "errors");

    // PATCH changes what it names: enabled alone keeps the schedule; a cron expression replaces the period.
    let off = h.call("PATCH", &format!("{PATH}/errors"), Some(&a), Some(json!({ "enabled": false }))).await.expect(200);
    assert_eq!((&off.body["enabled"], &off.body["frequency_s"]), (&json!(false), &json!(10)));
    let cron = h.call("PATCH", &format!("{PATH}/errors"), Some(&a), Some(json!({ "cron": "*/5 * * * *" }))).await;
    let cron = cron.expect(200).body;
    assert_eq!(
        (&cron["frequency_s"], &cron["cron"], &cron["enabled"]),
        (&Value::Null, &json!("*/5 * * * *"), &json!(false))
    );
    let bad = h.call("PATCH", &format!("{PATH}/errors"), Some(&a), Some(json!({ "frequency_s": 0 }))).await.expect(400);
    assert!(bad.message().contains("at least 1 second"), "{}", bad.body);

    // Results, as the vizier side stored them.
    let cron_id: Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    let result = NewCronResult {
        org_id: org,
        cron_id,
        vizier_id: prod,
        run_at: 1_700_000_010_000_000_000,
        duration_ns: 12_345_678,
        error_code: 3,
        error: "pxl does not compile".into(),
        records: 0,
        bytes: 0,
    };
    assert!(h.state.metastore.record_cron_result(result, 100).await.expect("record"));
    let results = h.call("GET", &format!("{PATH}/errors/results"), Some(&a), None).await.expect(200).body;
    let r = &results[0];
    assert_eq!(results.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (&r["vizier_id"], &r["run_at"], &r["duration_ms"], &r["error_code"], &r["error"]),
        (&json!(prod.to_string()), &json!(1_700_000_010_i64), &json!(12), &json!(3), &json!("pxl does not compile"))
    );

    // Another org sees and touches nothing of it.
    let b = Cred::Bearer(h.second_org("borg").await);
    assert_eq!(h.call("GET", PATH, Some(&b), None).await.expect(200).body, json!([]));
    for (method, path) in [
        ("GET", format!("{PATH}/errors")),
        ("GET", format!("{PATH}/{cron_id}")),
        ("GET", format!("{PATH}/errors/results")),
        ("DELETE", format!("{PATH}/errors")),
    ] {
        h.call(method, &path, Some(&b), None).await.expect(404);
    }
    h.call("PATCH", &format!("{PATH}/errors"), Some(&b), Some(json!({ "enabled": true }))).await.expect(404);
    // The other org may use the same name.
    h.call("POST", PATH, Some(&b), Some(json!({ "name": "errors", "script": pxl("b"), "frequency_s": 60 })))
        .await
        .expect(201);

    h.call("DELETE", &format!("{PATH}/errors"), Some(&a), None).await.expect(204);
    h.call("GET", &format!("{PATH}/errors"), Some(&a), None).await.expect(404);
    assert!(h.state.metastore.list_cron_results(org, cron_id).await.expect("results").is_empty());
    h.call("GET", PATH, None, None).await.expect(401);

    // Two creates and two patches of A, B's create, A's delete: each told once, with its org.
    let b_me = h.call("GET", "/api/v1/auth/me", Some(&b), None).await.expect(200);
    let b_org: Uuid = b_me.body["org"]["id"].as_str().expect("org").parse().expect("uuid");
    assert_eq!(recorder.orgs(), [org, org, org, org, b_org, org]);
}
