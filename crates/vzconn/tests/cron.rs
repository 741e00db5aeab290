//! The cloud's cron side on both buses, driven as VZConn drives it (envelopes on `v2c.<shard>.<id>.cron.*`),
//! with two replicas sharing the queue group: each vizier gets only its enabled scripts, a request with the
//! checksum it holds gets no answer, a result sent twice is stored once and acknowledged each time, and a
//! change pushed to the org reaches every vizier of it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use loupe_bus::{Bus, Subscription, subject};
use loupe_metastore::{Metastore, NewCronScript, NewVizier};
use loupe_proto::vzconnpb::{BusEnvelope, CronResultAck, CronRunKey, CronRunResult, CronScriptSet, CronSyncRequest};
use loupe_vzconn::{CronConfig, CronService, topic};
use prost::Message as _;
use uuid::Uuid;

use crate::common::{Backend, TempDir, metastore};

async fn cron(ms: &Arc<dyn Metastore>, org_id: Uuid, name: &str, targets: Vec<Uuid>, enabled: bool) -> Uuid {
    let new = NewCronScript {
        org_id,
        name: name.into(),
        script: "import px\npx.display(px.DataFrame('http_events'))".into(),
        cluster_ids: targets,
        frequency_s: 10,
        cron_expr: String::new(),
        enabled,
        configs: String::new(),
    };
    ms.create_cron_script(new).await.expect("cron script").id
}

/// Publishes `payload` on `topic` as vizier `vizier_id` of `org_id`, as VZConn does for a bridge message.
async fn up(bus: &Arc<dyn Bus>, org_id: Uuid, vizier_id: Uuid, topic: &str, payload: Vec<u8>) {
    let envelope = BusEnvelope {
        vizier_id: vizier_id.to_string(),
        org_id: org_id.to_string(),
        session_id: String::new(),
        payload,
    };
    bus.publish(&subject::v2c(&vizier_id.to_string(), topic), envelope.encode_to_vec().into()).await.expect("publish");
}

/// The next message down to a vizier: its topic and payload; `None` after `limit`.
async fn down(sub: &mut Subscription, limit: Duration) -> Option<(String, Vec<u8>)> {
    let m = tokio::time::timeout(limit, sub.next()).await.ok()??;
    let topic = m.subject.rsplit_once(".cron.").map(|(_, t)| format!("cron.{t}")).expect("a cron topic");
    Some((topic, BusEnvelope::decode(m.payload).expect("envelope").payload))
}

async fn sync(sub: &mut Subscription) -> CronScriptSet {
    let (topic, payload) = down(sub, Duration::from_secs(5)).await.expect("a set in time");
    assert_eq!(topic, topic::CRON_SYNC);
    CronScriptSet::decode(payload.as_slice()).expect("set")
}

#[tokio::test]
async fn viziers_get_their_scripts_and_a_result_is_stored_once_on_both_buses() {
    for backend in Backend::both() {
        let backend = backend();
        let dir = TempDir::new("cron");
        let ms = metastore(dir.path()).await;
        let bus = backend.bus().await;
        let org = ms.create_org("org").await.expect("org").id;
        let vizier = |name: &str| NewVizier {
            org_id: org,
            name: name.into(),
            cluster_uid: format!("uid-{name}"),
            version: "0.1.0".into(),
        };
        let a = ms.create_vizier(vizier("a")).await.expect("a").id;
        let b = ms.create_vizier(vizier("b")).await.expect("b").id;
        let everywhere = cron(&ms, org, "everywhere", vec![], true).await;
        let only_b = cron(&ms, org, "only-b", vec![b], true).await;
        cron(&ms, org, "off", vec![], false).await;
        let config = CronConfig { keep_results: 2, ..CronConfig::default() };
        let replicas = [
            CronService::start(Arc::clone(&ms), Arc::clone(&bus), config.clone()).await.expect("replica 1"),
            CronService::start(Arc::clone(&ms), Arc::clone(&bus), config).await.expect("replica 2"),
        ];
        let mut to_a = bus.subscribe(&format!("c2v.{a}.cron.>")).await.expect("subscribe a");
        let mut to_b = bus.subscribe(&format!("c2v.{b}.cron.>")).await.expect("subscribe b");

        // A vizier holding nothing gets its enabled scripts; one holding that set gets no answer.
        let request = |checksum: &str| CronSyncRequest { checksum: checksum.into() }.encode_to_vec();
        up(&bus, org, a, topic::CRON_REQUEST, request("")).await;
        let set_a = sync(&mut to_a).await;
        let names: Vec<&str> = set_a.scripts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["everywhere"], "{}", backend.name());
        assert_eq!((set_a.scripts[0].id.clone(), set_a.scripts[0].frequency_s), (everywhere.to_string(), 10));
        up(&bus, org, b, topic::CRON_REQUEST, request("stale")).await;
        let set_b = sync(&mut to_b).await;
        let names: Vec<&str> = set_b.scripts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["everywhere", "only-b"], "{}", backend.name());
        assert_ne!(set_a.checksum, set_b.checksum);
        up(&bus, org, a, topic::CRON_REQUEST, request(&set_a.checksum)).await;
        assert_eq!(down(&mut to_a, Duration::from_millis(500)).await, None, "an up-to-date vizier is left alone");

        // A result sent twice (its acknowledgement was lost) is stored once and acknowledged each time.
        let run = CronRunResult {
            cron_id: only_b.to_string(),
            run_at_ns: 1_700_000_010_000_000_000,
            duration_ns: 2_500_000,
            error_code: 0,
            error: String::new(),
            records: 7,
            bytes: 1234,
        };
        let key = CronRunKey { cron_id: run.cron_id.clone(), run_at_ns: run.run_at_ns };
        for _ in 0..2 {
            up(&bus, org, b, topic::CRON_RESULT, run.encode_to_vec()).await;
            let (topic, payload) = down(&mut to_b, Duration::from_secs(5)).await.expect("an ack in time");
            assert_eq!(topic, topic::CRON_ACK);
            assert_eq!(CronResultAck::decode(payload.as_slice()).expect("ack").runs, std::slice::from_ref(&key));
        }
        let stored = ms.list_cron_results(org, only_b).await.expect("results");
        let got: Vec<(Uuid, i64, i64, i64, i64, i64)> =
            stored.iter().map(|r| (r.vizier_id, r.run_at, r.duration_ns, r.error_code, r.records, r.bytes)).collect();
        assert_eq!(got, [(b, 1_700_000_010_000_000_000, 2_500_000, 0, 7, 1234)], "{}", backend.name());

        // A result from a vizier the script does not run on is acknowledged and dropped.
        let elsewhere = CronRunResult { run_at_ns: 1_700_000_020_000_000_000, ..run.clone() };
        up(&bus, org, a, topic::CRON_RESULT, elsewhere.encode_to_vec()).await;
        let (topic, _) = down(&mut to_a, Duration::from_secs(5)).await.expect("an ack in time");
        assert_eq!(topic, topic::CRON_ACK);
        assert_eq!(ms.list_cron_results(org, only_b).await.expect("results").len(), 1, "{}", backend.name());

        // A result for a script that does not exist (deleted, or never) is acknowledged and dropped.
        let ghost = CronRunResult { cron_id: Uuid::new_v4().to_string(), ..run.clone() };
        up(&bus, org, b, topic::CRON_RESULT, ghost.encode_to_vec()).await;
        let (topic, _) = down(&mut to_b, Duration::from_secs(5)).await.expect("an ack in time");
        assert_eq!(topic, topic::CRON_ACK);

        // A change pushed for the org reaches both viziers.
        ms.delete_cron_script(org, everywhere).await.expect("delete");
        replicas[0].pusher().push_org(org).await;
        assert!(sync(&mut to_a).await.scripts.is_empty(), "{}", backend.name());
        let names: Vec<String> = sync(&mut to_b).await.scripts.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["only-b"], "{}", backend.name());
    }
}

/// The real connector: it runs what the cloud sent through the real query service; restarted while the cloud is
/// down it runs the scripts it kept on disk, and the results made meanwhile reach the cloud once it is back,
/// each run once, and are then forgotten by the vizier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vizier_restarted_while_the_cloud_is_down_keeps_running_its_scripts() {
    use loupe_connector::{CRON_RESULTS_FILE, CRON_SCRIPTS_FILE, Connector};

    use crate::common::{Server, connector_config, eventually, org_with_key, pem};

    let dir = TempDir::new("cron-restart");
    let ms = metastore(dir.path()).await;
    let (org, key, _) = org_with_key(&ms, "org").await;
    let bus: Arc<dyn Bus> = Arc::new(loupe_bus::InProcessBus::new());
    let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
    let addr = server.addr;
    let cron_side = CronService::start(Arc::clone(&ms), Arc::clone(&bus), CronConfig::default()).await.expect("cron");
    let (query_addr, _pem, _) = pem(5).await;
    let data = dir.path().join("vizier");
    let config = connector_config(&server.url(), &data, query_addr, Some(&key));
    let connector = Connector::start(config.clone()).expect("start");
    let mut state = connector.state();
    tokio::time::timeout(Duration::from_secs(20), state.wait_for(|s| s.connected)).await.expect("in time").expect("up");

    let new = NewCronScript {
        org_id: org,
        name: "rows".into(),
        script: "import px\npx.display(px.DataFrame(table='http_events', start_time='-5m')[['req_path']])".into(),
        cluster_ids: vec![],
        frequency_s: 1,
        cron_expr: String::new(),
        enabled: true,
        configs: String::new(),
    };
    let cron_id = ms.create_cron_script(new).await.expect("cron").id;
    cron_side.pusher().push_org(org).await;
    let stored = |ms: Arc<dyn Metastore>| async move { ms.list_cron_results(org, cron_id).await.expect("results") };
    eventually(Duration::from_secs(10), "a first result", || {
        let ms = Arc::clone(&ms);
        async move { !stored(ms).await.is_empty() }
    })
    .await;

    // The cloud goes away, then the vizier restarts: it runs what it kept, and keeps the results.
    server.stop().await;
    connector.stop().await;
    let saved = std::fs::read_to_string(data.join(CRON_SCRIPTS_FILE)).expect("scripts kept");
    assert!(saved.contains("\"rows\""), "{saved}");
    let before = stored(Arc::clone(&ms)).await.len();
    let again = Connector::start(config).expect("restart");
    let pending = || {
        let text = std::fs::read_to_string(data.join(CRON_RESULTS_FILE)).unwrap_or_default();
        // One `cron_id` per waiting result (the file is JSON; this crate has no JSON parser).
        text.matches("\"cron_id\"").count()
    };
    eventually(Duration::from_secs(10), "two runs without the cloud", || async { pending() >= 2 }).await;
    assert_eq!(stored(Arc::clone(&ms)).await.len(), before, "nothing reaches a cloud that is down");

    // The cloud returns: the waiting results arrive, each run once, and the vizier forgets them.
    let server = Server::start_with(
        Arc::clone(&ms),
        Arc::clone(&bus),
        loupe_vzconn::VzConnConfig::new(crate::common::SECRET.to_vec()),
        addr,
    )
    .await;
    eventually(Duration::from_secs(15), "the waiting results stored", || {
        let ms = Arc::clone(&ms);
        async move { stored(ms).await.len() >= before + 2 }
    })
    .await;
    // Disabled, it stops running; what is left is acknowledged and forgotten.
    let off = loupe_metastore::CronScriptUpdate {
        script: "import px\npx.display(px.DataFrame(table='http_events', start_time='-5m')[['req_path']])".into(),
        cluster_ids: vec![],
        frequency_s: 1,
        cron_expr: String::new(),
        enabled: false,
        configs: String::new(),
    };
    ms.update_cron_script(org, cron_id, off).await.expect("disable");
    cron_side.pusher().push_org(org).await;
    eventually(Duration::from_secs(5), "acknowledged results forgotten", || async { pending() == 0 }).await;
    again.stop().await;
    let results = stored(Arc::clone(&ms)).await;
    let runs: Vec<i64> = results.iter().map(|r| r.run_at).collect();
    let mut distinct = runs.clone();
    distinct.dedup();
    assert_eq!(distinct, runs, "each run once");
    assert!(runs.iter().all(|t| t % 1_000_000_000 == 0), "runs at whole seconds: {runs:?}");
    assert!(results.iter().all(|r| (r.error_code, r.records) == (0, 5)), "{results:?}");
    server.stop().await;
}
