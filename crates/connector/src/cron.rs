//! The vizier's cron scheduler: runs the cron scripts the cloud gave it, on their schedules, through the
//! vizier's query service, and sends each run's result to the cloud until the cloud acknowledges it.
//!
//! It outlives bridges: while the cloud link is down the scripts keep running and their results wait. Both the
//! set of scripts (`cron-scripts.json`) and the results not yet acknowledged (`cron-results.json`, at most
//! `cron_max_pending`, the oldest dropped first) are kept on disk in the data dir, 0600, so a restart while the
//! cloud is away neither stops the scripts nor loses their results. When a bridge opens it asks for the set with
//! the checksum of the one it holds (`cron.request`, again every `cron_request_interval`), and sends every
//! waiting result; a result not acknowledged within `RESEND_AFTER` is sent again (the cloud stores a run once).
//! A run's time is when it was due (`loupe_common::schedule`), so every run has one name on both sides.
//!
//! Owns scheduling, the local copies and the cron topics on the vizier side. Must not touch the bridge's
//! session (it is handed the bridge's outbound queue) nor decode query messages (`query` runs the script).

use std::collections::VecDeque;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loupe_common::schedule::Schedule;
use loupe_common::time::now_unix_ns;
use loupe_proto::vzconnpb::{
    BridgeMessage, CronResultAck, CronRunResult, CronScriptSet, CronScriptSpec, CronSyncRequest, ExportDefault,
};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::query::QueryClient;
use crate::wire;

/// The set of scripts last received, in the data dir.
pub const SCRIPTS_FILE: &str = "cron-scripts.json";
/// The results not yet acknowledged, in the data dir.
pub const RESULTS_FILE: &str = "cron-results.json";
/// A result sent this long ago without an acknowledgement is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// The longest a run may take (a shorter period bounds it further).
const MAX_RUN_TIME: Duration = Duration::from_secs(300);

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub(crate) struct CronSettings {
    /// Where the two files live.
    pub(crate) data_dir: PathBuf,
    /// How often a connected vizier asks for its set.
    pub(crate) request_interval: Duration,
    /// Results kept while unacknowledged.
    pub(crate) max_pending: usize,
    /// Each script's newest rows.
    pub(crate) latest: crate::latest::LatestResults,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SavedSet {
    checksum: String,
    scripts: Vec<SavedScript>,
    /// The org's default export endpoint, encoded `ExportDefault` in hex (header values are credentials: the
    /// file is 0600 and never logged).
    #[serde(default)]
    export_default: String,
    /// The org's history retention per table.
    #[serde(default)]
    retention: Vec<SavedRetention>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedRetention {
    table: String,
    max_age_s: u64,
    max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedScript {
    id: String,
    name: String,
    script: String,
    frequency_s: i64,
    cron_expr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedResult {
    cron_id: String,
    run_at_ns: i64,
    duration_ns: i64,
    error_code: i32,
    error: String,
    records: i64,
    bytes: i64,
}

enum Command {
    /// A bridge opened (its outbound queue) or closed (`None`).
    Link(Option<mpsc::Sender<BridgeMessage>>),
    /// A cron message from the cloud.
    Message(BridgeMessage),
}

/// The session's handle on the scheduler; the scheduler stops when every handle is dropped.
#[derive(Clone)]
pub(crate) struct CronHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl CronHandle {
    /// A bridge is open: results and requests go out on `out`.
    pub(crate) fn linked(&self, out: mpsc::Sender<BridgeMessage>) {
        let _ = self.tx.send(Command::Link(Some(out)));
    }

    /// The bridge closed.
    pub(crate) fn unlinked(&self) {
        let _ = self.tx.send(Command::Link(None));
    }

    /// Hands over a `cron.sync` or `cron.ack` message.
    pub(crate) fn deliver(&self, m: BridgeMessage) {
        let _ = self.tx.send(Command::Message(m));
    }
}

/// Loads the saved set and results and starts the scheduler.
pub(crate) fn start(settings: CronSettings, query: QueryClient) -> CronHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let set: Option<SavedSet> = load(&settings.data_dir.join(SCRIPTS_FILE));
    let pending: Vec<SavedResult> = load(&settings.data_dir.join(RESULTS_FILE)).unwrap_or_default();
    let scripts = set.as_ref().map_or(0, |s| s.scripts.len());
    if scripts != 0 || !pending.is_empty() {
        tracing::info!(scripts, pending = pending.len(), "cron scripts resumed from the data dir");
    }
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (retention, wanted) = tokio::sync::watch::channel(None);
    tokio::spawn(apply_retention(query.clone(), wanted));
    let mut scheduler = Scheduler {
        settings,
        query,
        retention,
        checksum: String::new(),
        scripts: Vec::new(),
        pending: pending.into_iter().map(|result| Pending { result, sent_at: None }).collect(),
        link: None,
        last_request: None,
        done_tx,
    };
    // Without a saved set nothing is known yet, the retention included: the vizier keeps its own until the
    // cloud's set arrives (handing it an empty one at every start raced the process's exit with a log line).
    if let Some(set) = set {
        scheduler.replace(set, now_unix_ns());
    }
    tokio::spawn(scheduler.run(rx, done_rx));
    CronHandle { tx }
}

struct Entry {
    spec: SavedScript,
    schedule: Schedule,
    next: Option<i64>,
}

struct Pending {
    result: SavedResult,
    sent_at: Option<Instant>,
}

struct Scheduler {
    settings: CronSettings,
    query: QueryClient,
    /// The history retention the vizier should hold (`None` until a set is known).
    retention: tokio::sync::watch::Sender<Option<Vec<SavedRetention>>>,
    checksum: String,
    scripts: Vec<Entry>,
    pending: VecDeque<Pending>,
    link: Option<mpsc::Sender<BridgeMessage>>,
    last_request: Option<Instant>,
    done_tx: mpsc::UnboundedSender<SavedResult>,
}

impl Scheduler {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut done: mpsc::UnboundedReceiver<SavedResult>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = now_unix_ns();
            let due_in = self
                .scripts
                .iter()
                .filter_map(|e| e.next)
                .min()
                .map(|due| Duration::from_nanos(due.saturating_sub(now).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Link(link)) => {
                        self.link = link;
                        if self.link.is_some() {
                            self.last_request = None;
                            for p in &mut self.pending {
                                p.sent_at = None;
                            }
                            self.maintain();
                        }
                    }
                    Some(Command::Message(m)) => self.receive(m),
                },
                Some(result) = done.recv() => {
                    self.add_result(result);
                    self.maintain();
                }
                () = tokio::time::sleep(due_in) => self.start_due_runs(),
                _ = tick.tick() => self.maintain(),
            }
        }
    }

    /// Replaces the scripts with `set`; a script whose schedule is unchanged keeps its next run.
    fn replace(&mut self, set: SavedSet, now: i64) {
        let mut next = Vec::with_capacity(set.scripts.len());
        for spec in set.scripts {
            let schedule = match Schedule::new(spec.frequency_s, &spec.cron_expr) {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, name = %spec.name, "cron script with an unusable schedule skipped");
                    continue;
                }
            };
            let kept =
                self.scripts.iter().find(|e| e.spec.id == spec.id && e.schedule == schedule).and_then(|e| e.next);
            let due = kept.or_else(|| schedule.next_after(now));
            next.push(Entry { spec, schedule, next: due });
        }
        self.scripts = next;
        let export_default = unhex(&set.export_default).and_then(|b| ExportDefault::decode(b.as_slice()).ok());
        self.query.set_export_default(export_default.as_ref());
        // The applier hands it to the vizier, retrying until the vizier takes it; an unchanged value is a no-op.
        self.retention.send_if_modified(|held| {
            let changed = held.as_ref() != Some(&set.retention);
            *held = Some(set.retention.clone());
            changed
        });
        self.settings.latest.retain(&self.scripts.iter().map(|e| e.spec.name.as_str()).collect());
        self.checksum = set.checksum;
    }

    fn receive(&mut self, m: BridgeMessage) {
        match m.topic.as_str() {
            wire::CRON_SYNC => {
                let Ok(set) = CronScriptSet::decode(m.payload.as_slice()) else {
                    return tracing::warn!("undecodable cron script set dropped");
                };
                let saved = SavedSet {
                    checksum: set.checksum,
                    scripts: set.scripts.into_iter().map(saved_script).collect(),
                    export_default: set.export_default.map(|e| hex(&e.encode_to_vec())).unwrap_or_default(),
                    retention: set
                        .retention
                        .into_iter()
                        .map(|r| SavedRetention { table: r.table, max_age_s: r.max_age_s, max_bytes: r.max_bytes })
                        .collect(),
                };
                if let Err(error) = save(&self.settings.data_dir.join(SCRIPTS_FILE), &saved) {
                    tracing::warn!(%error, "cron scripts not saved; a restart would wait for the cloud");
                }
                tracing::info!(scripts = saved.scripts.len(), "cron scripts received");
                self.replace(saved, now_unix_ns());
            }
            wire::CRON_ACK => {
                let Ok(ack) = CronResultAck::decode(m.payload.as_slice()) else { return };
                let before = self.pending.len();
                self.pending.retain(|p| {
                    !ack.runs.iter().any(|k| k.cron_id == p.result.cron_id && k.run_at_ns == p.result.run_at_ns)
                });
                if self.pending.len() != before {
                    self.save_pending();
                }
            }
            _ => {}
        }
    }

    fn start_due_runs(&mut self) {
        let now = now_unix_ns();
        for entry in &mut self.scripts {
            let Some(due) = entry.next.filter(|&d| d <= now) else { continue };
            // A run missed while the process was stopped or asleep is not made up: the next one is in the future.
            entry.next = entry.schedule.next_after(due.max(now));
            let timeout = match entry.schedule {
                Schedule::Every(secs) => MAX_RUN_TIME.min(Duration::from_secs(secs.max(1) as u64)),
                Schedule::Cron(_) => MAX_RUN_TIME,
            };
            let (query, spec, done) = (self.query.clone(), entry.spec.clone(), self.done_tx.clone());
            let latest = self.settings.latest.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = query.run_script(&spec.script, &spec.name, timeout).await;
                let duration_ns = started.elapsed().as_nanos().min(i64::MAX as u128) as i64;
                let (error_code, error, summary) = match outcome {
                    Ok(mut summary) => {
                        latest.set(&spec.name, summary.tables.take());
                        (0, String::new(), summary)
                    }
                    Err(status) => (status.code() as i32, status.message().to_owned(), Default::default()),
                };
                tracing::debug!(name = %spec.name, error_code, "cron script ran");
                let _ = done.send(SavedResult {
                    cron_id: spec.id,
                    run_at_ns: due,
                    duration_ns,
                    error_code,
                    error,
                    records: summary.records,
                    bytes: summary.bytes,
                });
            });
        }
    }

    fn add_result(&mut self, result: SavedResult) {
        self.pending.push_back(Pending { result, sent_at: None });
        let over = self.pending.len().saturating_sub(self.settings.max_pending.max(1));
        if over > 0 {
            self.pending.drain(..over);
            tracing::warn!(dropped = over, "cron results dropped: too many wait for the cloud");
        }
        self.save_pending();
    }

    /// Sends what is due while linked: the sync request and the results not (recently) sent.
    fn maintain(&mut self) {
        let Some(out) = &self.link else { return };
        let now = Instant::now();
        if self.last_request.is_none_or(|t| now.duration_since(t) >= self.settings.request_interval) {
            let request = CronSyncRequest { checksum: self.checksum.clone() };
            if out.try_send(message(wire::CRON_REQUEST, request.encode_to_vec())).is_ok() {
                self.last_request = Some(now);
            }
        }
        for p in &mut self.pending {
            if p.sent_at.is_some_and(|t| now.duration_since(t) < RESEND_AFTER) {
                continue;
            }
            let r = &p.result;
            let run = CronRunResult {
                cron_id: r.cron_id.clone(),
                run_at_ns: r.run_at_ns,
                duration_ns: r.duration_ns,
                error_code: r.error_code,
                error: r.error.clone(),
                records: r.records,
                bytes: r.bytes,
            };
            // A full queue leaves the rest for the next tick.
            if out.try_send(message(wire::CRON_RESULT, run.encode_to_vec())).is_err() {
                break;
            }
            p.sent_at = Some(now);
        }
    }

    fn save_pending(&self) {
        let results: Vec<&SavedResult> = self.pending.iter().map(|p| &p.result).collect();
        if let Err(error) = save(&self.settings.data_dir.join(RESULTS_FILE), &results) {
            tracing::warn!(%error, "cron results not saved; a restart would lose them");
        }
    }
}

/// Hands each history retention the scheduler wants to the vizier's `VizierConfigService`, retrying (every
/// `RETENTION_RETRY`, and at once on a newer value) until the vizier takes it: the query service may start
/// after the connector or restart. Ends when the scheduler does.
async fn apply_retention(query: QueryClient, mut wanted: tokio::sync::watch::Receiver<Option<Vec<SavedRetention>>>) {
    const RETENTION_RETRY: Duration = Duration::from_secs(5);
    let mut warned = false;
    loop {
        let current = wanted.borrow_and_update().clone();
        if let Some(tables) = current {
            let limits = tables
                .iter()
                .map(|t| {
                    let limits =
                        loupe_proto::clusterpb::RetentionLimits { max_age_s: t.max_age_s, max_bytes: t.max_bytes };
                    (t.table.clone(), limits)
                })
                .collect();
            match query.set_history_retention(limits).await {
                Ok(()) => {
                    tracing::info!(tables = tables.len(), "history retention handed to the vizier");
                    warned = false;
                }
                Err(status) => {
                    if !warned {
                        tracing::warn!(error = %status.message(), code = ?status.code(), "the vizier did not take the history retention; retrying");
                        warned = true;
                    }
                    tokio::select! {
                        changed = wanted.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep(RETENTION_RETRY) => {}
                    }
                    continue;
                }
            }
        }
        if wanted.changed().await.is_err() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn saved_script(s: CronScriptSpec) -> SavedScript {
    SavedScript { id: s.id, name: s.name, script: s.script, frequency_s: s.frequency_s, cron_expr: s.cron_expr }
}

fn message(topic: &str, payload: Vec<u8>) -> BridgeMessage {
    BridgeMessage { topic: topic.to_owned(), session_id: String::new(), payload }
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cron state unreadable; starting without it");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|error| tracing::warn!(%error, path = %path.display(), "cron state unreadable; ignored"))
        .ok()
}

/// Writes `value` to `path` whole (a temp file renamed over it), 0600.
fn save<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn spec(id: &str, frequency_s: i64) -> SavedScript {
        SavedScript {
            id: id.into(),
            name: format!("n-{id}"),
            script: "px.display(1)".into(),
            frequency_s,
            cron_expr: String::new(),
        }
    }

    fn scheduler(dir: &Path) -> Scheduler {
        let query = QueryClient::new("http://127.0.0.1:1", None, "t").expect("client");
        Scheduler {
            settings: CronSettings {
                data_dir: dir.to_owned(),
                request_interval: Duration::from_secs(30),
                max_pending: 3,
                latest: Default::default(),
            },
            query,
            retention: tokio::sync::watch::channel(None).0,
            checksum: String::new(),
            scripts: Vec::new(),
            pending: VecDeque::new(),
            link: None,
            last_request: None,
            done_tx: mpsc::unbounded_channel().0,
        }
    }

    fn result(run_at_ns: i64) -> SavedResult {
        SavedResult {
            cron_id: "c".into(),
            run_at_ns,
            duration_ns: 1,
            error_code: 0,
            error: String::new(),
            records: 2,
            bytes: 3,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loupe-cron-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[tokio::test]
    async fn a_new_set_keeps_the_next_run_of_unchanged_scripts() {
        const S: i64 = 1_000_000_000;
        let dir = temp_dir("replace");
        let mut s = scheduler(&dir);
        let now = 1_000 * S + 5;
        s.replace(
            SavedSet { checksum: "a".into(), scripts: vec![spec("x", 10), spec("y", 60)], ..Default::default() },
            now,
        );
        let next: Vec<Option<i64>> = s.scripts.iter().map(|e| e.next).collect();
        assert_eq!(next, [Some(1_010 * S), Some(1_020 * S)]);
        s.scripts[0].next = Some(1_020 * S);
        // y's period changes; x stays; z is new; one with a broken schedule is skipped.
        let broken = SavedScript { cron_expr: "bad".into(), ..spec("w", 0) };
        let scripts = vec![spec("x", 10), spec("y", 30), spec("z", 7), broken];
        s.replace(SavedSet { checksum: "b".into(), scripts, ..Default::default() }, now);
        let next: Vec<(&str, Option<i64>)> = s.scripts.iter().map(|e| (e.spec.id.as_str(), e.next)).collect();
        assert_eq!(next, [("x", Some(1_020 * S)), ("y", Some(1_020 * S)), ("z", Some(1_001 * S))]);
        assert_eq!(s.checksum, "b");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn results_wait_on_disk_bounded_until_acknowledged() {
        let dir = temp_dir("pending");
        let mut s = scheduler(&dir);
        for t in 1..=4 {
            s.add_result(result(t));
        }
        let kept: Vec<i64> = s.pending.iter().map(|p| p.result.run_at_ns).collect();
        assert_eq!(kept, [2, 3, 4], "the oldest is dropped past the bound");
        let path = dir.join(RESULTS_FILE);
        assert_eq!(std::fs::metadata(&path).expect("saved").permissions().mode() & 0o777, 0o600);
        let on_disk: Vec<SavedResult> = load(&path).expect("load");
        assert_eq!(on_disk, [result(2), result(3), result(4)]);

        // Linked: everything goes out once, then nothing until RESEND_AFTER.
        let (out, mut sent) = mpsc::channel(16);
        s.link = Some(out);
        s.maintain();
        let mut topics = Vec::new();
        while let Ok(m) = sent.try_recv() {
            topics.push(m.topic);
        }
        assert_eq!(topics, ["cron.request", "cron.result", "cron.result", "cron.result"]);
        s.maintain();
        assert!(sent.try_recv().is_err(), "nothing is re-sent before {RESEND_AFTER:?}");

        let ack = CronResultAck {
            runs: vec![
                loupe_proto::vzconnpb::CronRunKey { cron_id: "c".into(), run_at_ns: 3 },
                loupe_proto::vzconnpb::CronRunKey { cron_id: "other".into(), run_at_ns: 4 },
            ],
        };
        s.receive(message(wire::CRON_ACK, ack.encode_to_vec()));
        let on_disk: Vec<SavedResult> = load(&path).expect("load");
        assert_eq!(on_disk, [result(2), result(4)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_received_set_is_saved_private_and_reloaded() {
        let dir = temp_dir("sync");
        let mut s = scheduler(&dir);
        let set = CronScriptSet {
            scripts: vec![CronScriptSpec {
                id: "x".into(),
                name: "n-x".into(),
                script: "px.display(1)".into(),
                frequency_s: 10,
                cron_expr: String::new(),
            }],
            checksum: "sum".into(),
            export_default: None,
            retention: vec![loupe_proto::vzconnpb::HistoryRetention {
                table: "http_events".into(),
                max_age_s: 3600,
                max_bytes: 1 << 20,
            }],
        };
        let mut wanted = s.retention.subscribe();
        s.receive(message(wire::CRON_SYNC, set.encode_to_vec()));
        assert_eq!(s.scripts.len(), 1);
        let retention = vec![SavedRetention { table: "http_events".into(), max_age_s: 3600, max_bytes: 1 << 20 }];
        assert!(wanted.has_changed().expect("open"), "the retention goes to the applier");
        assert_eq!(wanted.borrow_and_update().as_ref(), Some(&retention));
        let path = dir.join(SCRIPTS_FILE);
        assert_eq!(std::fs::metadata(&path).expect("saved").permissions().mode() & 0o777, 0o600);
        let saved: SavedSet = load(&path).expect("load");
        assert_eq!(
            saved,
            SavedSet { checksum: "sum".into(), scripts: vec![spec("x", 10)], retention, ..Default::default() }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
