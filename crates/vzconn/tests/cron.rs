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
