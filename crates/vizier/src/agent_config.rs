//! The vizier's agent configuration (table budgets, sampling, protocols parsed, history retention): what the
//! broker holds and hands out with every heartbeat's answer ([`ConfigHolder`]), its checks ([`validate`]), how
//! a PEM applies a new version live, without a restart ([`PemApplier`]), and the `VizierConfigService` through
//! which the cloud connector hands over the org's history retention ([`ConfigService`]).
//!
//! Owns the rules of a configuration; must not know how it travels (that is `cluster`'s registration) nor
//! change the tables' or the tracker's code (it calls `Table::set_budget` and the collector's
//! `LiveSettings`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loupe_collector::LiveSettings;
use loupe_proto::clusterpb::{AgentConfig, RetentionLimits};
use loupe_store::Store;
use prost::Message as _;

/// Smallest table budget a configuration may set: below it a table holds too few rows to query.
pub const MIN_TABLE_BUDGET_BYTES: u64 = 64 << 10;
/// Entries a configuration may name, per map.
const MAX_ENTRIES: usize = 256;

/// Why a configuration is refused, or why an agent could not apply it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Names a table no agent has.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// A budget below [`MIN_TABLE_BUDGET_BYTES`].
    #[error("the budget of `{table}` is {bytes} bytes; the least is {MIN_TABLE_BUDGET_BYTES}")]
    BudgetTooSmall {
        /// The table.
        table: String,
        /// The budget asked.
        bytes: u64,
    },
    /// Sampling outside 0..=1.
    #[error("sampling must be from 0 to 1, got {0}")]
    Sampling(f64),
    /// Names a protocol no parser answers to.
    #[error(transparent)]
    Protocol(#[from] loupe_collector::UnknownProtocol),
    /// Too many entries.
    #[error("a configuration names at most {MAX_ENTRIES} tables and {MAX_ENTRIES} protocols")]
    TooLarge,
    /// The budgets would add up to more than the agent's store may hold.
    #[error("table budgets add up to {asked} MiB, over this agent's store share of {share} MiB")]
    OverShare {
        /// MiB asked in all.
        asked: u64,
        /// MiB the agent's flags gave the store.
        share: u64,
    },
    /// A history retention out of bounds.
    #[error("the history retention of `{table}` is out of bounds: ages from 60 s to 400 days, 1 KiB to 16 TiB")]
    Retention {
        /// The table.
        table: String,
    },
    /// Another change came first (`expected_version`).
    #[error("the configuration is at version {current}, not {expected}: read it again and retry")]
    Conflict {
        /// The version now.
        current: u64,
        /// The version the caller expected.
        expected: u64,
    },
    /// The broker could not keep it.
    #[error("failed to save the configuration in {path}: {why}")]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Checks a configuration against what every agent knows: the tables, the protocol names, the bounds.
pub fn validate(config: &AgentConfig) -> Result<(), ConfigError> {
    if config.table_budget_bytes.len() > MAX_ENTRIES
        || config.protocols.len() > MAX_ENTRIES
        || config.history_retention.len() > MAX_ENTRIES
    {
        return Err(ConfigError::TooLarge);
    }
    retention_of(&config.history_retention)?;
    for (table, &bytes) in &config.table_budget_bytes {
        if !is_schema_table(table) {
            return Err(ConfigError::UnknownTable(table.clone()));
        }
        if bytes < MIN_TABLE_BUDGET_BYTES {
            return Err(ConfigError::BudgetTooSmall { table: table.clone(), bytes });
        }
    }
    if let Some(s) = config.sampling
        && !(0.0..=1.0).contains(&s)
    {
        return Err(ConfigError::Sampling(s));
    }
    LiveSettings::default().set_disabled(config.protocols.keys().map(String::as_str))?;
    Ok(())
}

/// History retention per table as the history takes it, checked: known tables, ages and sizes in bounds.
pub fn retention_of(
    tables: &HashMap<String, RetentionLimits>,
) -> Result<BTreeMap<String, loupe_history::Retention>, ConfigError> {
    use loupe_history::Retention;
    let mut out = BTreeMap::new();
    for (table, limits) in tables {
        // A cron script's result table is held by name only (the cloud cannot know which exist).
        if !is_schema_table(table) && !loupe_history::results::is_result_table_name(table) {
            return Err(ConfigError::UnknownTable(table.clone()));
        }
        let retention =
            Retention { max_age: std::time::Duration::from_secs(limits.max_age_s), max_bytes: limits.max_bytes };
        if retention.bounded() != retention {
            return Err(ConfigError::Retention { table: table.clone() });
        }
        out.insert(table.clone(), retention);
    }
    Ok(out)
}

/// The broker's copy of the configuration, kept (protobuf, 0600) in a file when given one, so that a
/// restarted broker hands out the same version.
#[derive(Debug)]
pub struct ConfigHolder {
    current: Mutex<AgentConfig>,
    file: Option<PathBuf>,
}

impl ConfigHolder {
    /// Empty (version 0), kept nowhere.
    pub fn in_memory() -> Self {
        ConfigHolder { current: Mutex::default(), file: None }
    }

    /// The configuration kept in `file`, or an empty one when it does not exist yet.
    pub fn load(file: PathBuf) -> Result<Self, ConfigError> {
        let save_err = |why: String| ConfigError::Save { path: file.clone(), why };
        let current = match std::fs::read(&file) {
            Ok(bytes) => AgentConfig::decode(bytes.as_slice()).map_err(|e| save_err(format!("unreadable: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AgentConfig::default(),
            Err(e) => return Err(save_err(e.to_string())),
        };
        Ok(ConfigHolder { current: Mutex::new(current), file: Some(file) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AgentConfig> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration now.
    pub fn get(&self) -> AgentConfig {
        self.lock().clone()
    }

    /// Replaces the configuration by `config` (checked) as the next version, unless `expected_version`
    /// (when not 0) is no longer the current one. Returns what is now in force.
    /// The history retention is the cloud's ([`ConfigHolder::set_history_retention`]): an operator's change
    /// keeps it.
    pub fn set(&self, mut config: AgentConfig, expected_version: u64) -> Result<AgentConfig, ConfigError> {
        validate(&config)?;
        let mut current = self.lock();
        if expected_version != 0 && expected_version != current.version {
            return Err(ConfigError::Conflict { current: current.version, expected: expected_version });
        }
        config.history_retention = current.history_retention.clone();
        self.replace(&mut current, config)
    }

    /// Replaces the history retention (what the cloud's `px retention` sets), as the next version unless it is
    /// unchanged. Returns what is now in force.
    pub fn set_history_retention(&self, tables: HashMap<String, RetentionLimits>) -> Result<AgentConfig, ConfigError> {
        retention_of(&tables)?;
        let mut current = self.lock();
        if current.history_retention == tables {
            return Ok(current.clone());
        }
        let config = AgentConfig { history_retention: tables, ..current.clone() };
        self.replace(&mut current, config)
    }

    fn replace(&self, current: &mut AgentConfig, mut config: AgentConfig) -> Result<AgentConfig, ConfigError> {
        config.version = current.version + 1;
        if let Some(file) = &self.file {
            write_private(file, &config.encode_to_vec())
                .map_err(|e| ConfigError::Save { path: file.clone(), why: e.to_string() })?;
        }
        *current = config.clone();
        Ok(config)
    }
}

/// Writes `bytes` to `file` (0600) through a temporary file renamed over it, so a crash leaves the old or
/// the new configuration, never half of one.
fn write_private(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// What applies a configuration on an agent; `Err` is reported to the broker with the heartbeat.
pub type Applier = Arc<dyn Fn(&AgentConfig) -> Result<(), ConfigError> + Send + Sync>;

/// A PEM's applier: table budgets on its store (each table named gets its budget, the others the one
/// their flags gave them; the sum may not pass the store's share), sampling and protocols on its tracer.
pub struct PemApplier {
    store: Arc<Store>,
    live: Option<Arc<LiveSettings>>,
    history: Option<Arc<loupe_history::History>>,
}

impl PemApplier {
    /// Applies to `store`, and to the tracer's `live` settings when it traces.
    pub fn new(store: Arc<Store>, live: Option<Arc<LiveSettings>>) -> Self {
        PemApplier { store, live, history: None }
    }

    /// Also applies the history retention to `history` (when this PEM writes one).
    pub fn with_history(mut self, history: Option<Arc<loupe_history::History>>) -> Self {
        self.history = history;
        self
    }

    /// Applies `config` now: every part or, on an error, none.
    pub fn apply(&self, config: &AgentConfig) -> Result<(), ConfigError> {
        validate(config)?;
        let tables = self.store.tables();
        let budgets: HashMap<&str, usize> = tables
            .iter()
            .map(|t| {
                let asked = config.table_budget_bytes.get(t.name()).map(|&b| usize::try_from(b).unwrap_or(usize::MAX));
                (t.name(), asked.unwrap_or_else(|| self.store.configured_budget(t.name())))
            })
            .collect();
        let share: u128 = tables.iter().map(|t| self.store.configured_budget(t.name()) as u128).sum();
        let asked: u128 = budgets.values().map(|&b| b as u128).sum();
        if asked > share {
            return Err(ConfigError::OverShare { asked: (asked >> 20) as u64, share: (share >> 20) as u64 });
        }
        if let Some(live) = &self.live {
            let disabled = config.protocols.iter().filter(|(_, on)| !**on).map(|(name, _)| name.as_str());
            live.set_disabled(disabled)?;
            live.set_sampling(config.sampling.unwrap_or(1.0));
        }
        for t in &tables {
            let budget = budgets[t.name()];
            if t.budget() != budget {
                let evicted = t.set_budget(budget);
                tracing::info!(table = t.name(), budget, evicted, "table budget changed");
            }
        }
        if let Some(history) = &self.history {
            apply_retention(history, &config.history_retention)?;
        }
        Ok(())
    }

    /// As an [`Applier`].
    pub fn into_applier(self) -> Applier {
        Arc::new(move |c| self.apply(c))
    }
}

/// Whether `table` is one of the tables `loupe_schema` defines.
fn is_schema_table(table: &str) -> bool {
    loupe_schema::all_tables().iter().any(|t| t.name == table)
}

/// Replaces `history`'s own retention per table by `tables` (checked), logging a change.
pub(crate) fn apply_retention(
    history: &loupe_history::History,
    tables: &HashMap<String, RetentionLimits>,
) -> Result<(), ConfigError> {
    let wanted = retention_of(tables)?;
    if history.retention_table() == wanted {
        return Ok(());
    }
    history.replace_retention(&wanted).map_err(|e| ConfigError::Save { path: PathBuf::new(), why: e.to_string() })?;
    for (table, r) in &wanted {
        tracing::info!(table, max_age_s = r.max_age.as_secs(), max_bytes = r.max_bytes, "history retention set");
    }
    tracing::info!(tables = wanted.len(), "history retention changed; the next sweep enforces it");
    Ok(())
}

/// `VizierConfigService` on a vizier's query port: the broker's keeps the retention in its configuration (the
/// PEMs apply it at their next heartbeat); a lone PEM's applies it to its own history at once.
#[derive(Clone)]
pub enum ConfigService {
    /// A broker's: through its configuration.
    Broker(Arc<ConfigHolder>),
    /// A lone PEM's: its history, if it writes one.
    Pem(Option<Arc<loupe_history::History>>),
}

impl ConfigService {
    /// As a gRPC service, WITHOUT any credential check (the caller adds the vizier token's).
    pub fn into_server(self) -> loupe_proto::clusterpb::vizier_config_service_server::VizierConfigServiceServer<Self> {
        loupe_proto::clusterpb::vizier_config_service_server::VizierConfigServiceServer::new(self)
            .max_decoding_message_size(1 << 20)
    }
}

#[tonic::async_trait]
impl loupe_proto::clusterpb::vizier_config_service_server::VizierConfigService for ConfigService {
    async fn set_history_retention(
        &self,
        request: tonic::Request<loupe_proto::clusterpb::SetHistoryRetentionRequest>,
    ) -> Result<tonic::Response<loupe_proto::clusterpb::SetHistoryRetentionResponse>, tonic::Status> {
        let tables = request.into_inner().tables;
        if tables.len() > MAX_ENTRIES {
            return Err(tonic::Status::invalid_argument(ConfigError::TooLarge.to_string()));
        }
        let outcome = match self {
            ConfigService::Broker(holder) => {
                let before = holder.get().version;
                holder.set_history_retention(tables).map(|now| {
                    if now.version != before {
                        tracing::info!(
                            version = now.version,
                            "history retention from the cloud; PEMs apply it at their next heartbeat"
                        );
                    }
                })
            }
            ConfigService::Pem(Some(history)) => apply_retention(history, &tables),
            ConfigService::Pem(None) => retention_of(&tables).map(|wanted| {
                if !wanted.is_empty() {
                    tracing::info!(
                        tables = wanted.len(),
                        "history retention from the cloud ignored: this vizier writes no history"
                    );
                }
            }),
        };
        match outcome {
            Ok(()) => Ok(tonic::Response::new(loupe_proto::clusterpb::SetHistoryRetentionResponse {})),
            Err(e @ ConfigError::Save { .. }) => Err(tonic::Status::internal(e.to_string())),
            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Arc<Store> {
        let store = Arc::new(Store::new(loupe_store::StoreConfig::default()));
        for spec in loupe_schema::all_tables() {
            store.register(&spec).expect("registers");
        }
        store
    }

    #[test]
    fn configurations_are_checked_before_anyone_applies_them() {
        let ok = AgentConfig {
            table_budget_bytes: [("http_events".to_string(), 8 << 20)].into(),
            sampling: Some(0.5),
            protocols: [("redis".to_string(), false), ("http".to_string(), true)].into(),
            ..AgentConfig::default()
        };
        validate(&ok).expect("valid");
        let bad = |f: fn(&mut AgentConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            validate(&c).expect_err("refused")
        };
        assert_eq!(
            bad(|c| {
                c.table_budget_bytes.insert("nope".into(), 1 << 20);
            }),
            ConfigError::UnknownTable("nope".into())
        );
        // A cron result table is no store table: it has no budget to set (only a retention).
        assert_eq!(
            bad(|c| {
                c.table_budget_bytes.insert("cron_stats".into(), 1 << 20);
            }),
            ConfigError::UnknownTable("cron_stats".into())
        );
        assert!(matches!(
            bad(|c| {
                c.table_budget_bytes.insert("http_events".into(), 10);
            }),
            ConfigError::BudgetTooSmall { .. }
        ));
        assert_eq!(bad(|c| c.sampling = Some(1.5)), ConfigError::Sampling(1.5));
        assert!(matches!(
            bad(|c| {
                c.protocols.insert("gopher".into(), false);
            }),
            ConfigError::Protocol(_)
        ));
    }

    #[test]
    fn versions_advance_are_kept_and_a_stale_writer_is_refused() {
        let dir = std::env::temp_dir().join(format!("loupe-agent-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("agent-config.pb");
        let holder = ConfigHolder::load(file.clone()).expect("loads");
        assert_eq!(holder.get().version, 0);
        let c = AgentConfig { sampling: Some(0.25), ..AgentConfig::default() };
        assert_eq!(holder.set(c.clone(), 0).expect("set").version, 1);
        assert_eq!(holder.set(c.clone(), 1).expect("set").version, 2);
        assert_eq!(holder.set(c, 1).expect_err("stale"), ConfigError::Conflict { current: 2, expected: 1 });
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).expect("kept").permissions().mode() & 0o777, 0o600);
        let again = ConfigHolder::load(file).expect("reloads");
        assert_eq!((again.get().version, again.get().sampling), (2, Some(0.25)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pem_applies_budgets_at_once_and_refuses_more_than_its_share() {
        let store = store();
        let live = Arc::new(LiveSettings::default());
        let applier = PemApplier::new(Arc::clone(&store), Some(Arc::clone(&live)));
        let http = store.table("http_events").expect("table");
        let start = http.budget();
        let c = AgentConfig {
            version: 1,
            table_budget_bytes: [("http_events".to_string(), 1 << 20)].into(),
            sampling: Some(0.0),
            protocols: [("http".to_string(), false)].into(),
            ..AgentConfig::default()
        };
        applier.apply(&c).expect("applies");
        assert_eq!(http.budget(), 1 << 20);
        assert_eq!(live.sampling(), 0.0);
        // Back to the flags' budget when the table is no longer named.
        applier.apply(&AgentConfig { version: 2, ..AgentConfig::default() }).expect("applies");
        assert_eq!((http.budget(), live.sampling()), (start, 1.0));
        let greedy =
            AgentConfig { table_budget_bytes: [("http_events".to_string(), 1 << 40)].into(), ..AgentConfig::default() };
        assert!(matches!(applier.apply(&greedy), Err(ConfigError::OverShare { .. })));
        assert_eq!(http.budget(), start, "nothing applied");
    }

    fn limits(max_age_s: u64, max_bytes: u64) -> RetentionLimits {
        RetentionLimits { max_age_s, max_bytes }
    }

    #[test]
    fn the_clouds_retention_is_checked_versioned_and_kept_by_an_operators_change() {
        let holder = ConfigHolder::in_memory();
        for bad in [[("nope".to_string(), limits(3600, 1 << 30))], [("http_events".to_string(), limits(1, 1 << 30))]] {
            assert!(holder.set_history_retention(bad.into()).is_err());
        }
        let bad_result = [("cron_".to_string(), limits(3600, 1 << 30))];
        assert!(holder.set_history_retention(bad_result.into()).is_err(), "no script named");
        let tables: HashMap<String, RetentionLimits> = [
            ("http_events".to_string(), limits(7200, 1 << 30)),
            // The cloud accepts a cron script's result table by name: so must the vizier, or it refuses all.
            ("cron_service_stats_1m".to_string(), limits(86400, 1 << 20)),
        ]
        .into();
        assert_eq!(holder.set_history_retention(tables.clone()).expect("set").version, 1);
        assert_eq!(holder.set_history_retention(tables.clone()).expect("same").version, 1, "unchanged: no new version");
        // `loupe vizier config set --reset` sends an empty configuration: the cloud's part stays.
        let now = holder.set(AgentConfig { sampling: Some(0.5), ..AgentConfig::default() }, 0).expect("set");
        assert_eq!((now.version, now.history_retention), (2, tables));
        assert_eq!(holder.set_history_retention(HashMap::new()).expect("cleared").version, 3);
    }

    #[test]
    fn a_pem_applies_the_clouds_retention_to_its_history() {
        let dir = std::env::temp_dir().join(format!("loupe-agent-config-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = Arc::new(
            loupe_history::History::open(&loupe_history::HistoryConfig {
                location: dir.to_string_lossy().into_owned(),
                org: "o".into(),
                vizier: "v".into(),
                writer: "w".into(),
                max_read_bytes: 1 << 20,
                s3_options: vec![],
            })
            .expect("history"),
        );
        let applier = PemApplier::new(store(), None).with_history(Some(Arc::clone(&history)));
        let c = AgentConfig {
            history_retention: [("dns_events".to_string(), limits(3600, 1 << 20))].into(),
            ..AgentConfig::default()
        };
        applier.apply(&c).expect("applies");
        let want = loupe_history::Retention { max_age: std::time::Duration::from_secs(3600), max_bytes: 1 << 20 };
        assert_eq!(history.retention("dns_events"), want);
        assert_ne!(history.retention("http_events"), want, "other tables keep the default");
        applier.apply(&AgentConfig::default()).expect("applies");
        assert!(history.retention_table().is_empty(), "an empty policy puts every table back on the default");
        let lone = ConfigService::Pem(Some(Arc::clone(&history)));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        use loupe_proto::clusterpb::vizier_config_service_server::VizierConfigService as _;
        let req = |tables: HashMap<String, RetentionLimits>| {
            tonic::Request::new(loupe_proto::clusterpb::SetHistoryRetentionRequest { tables })
        };
        rt.block_on(lone.set_history_retention(req(c.history_retention.clone()))).expect("taken");
        assert_eq!(history.retention("dns_events"), want);
        let refused = rt.block_on(lone.set_history_retention(req([("x".to_string(), limits(3600, 1 << 20))].into())));
        assert_eq!(refused.expect_err("refused").code(), tonic::Code::InvalidArgument);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
