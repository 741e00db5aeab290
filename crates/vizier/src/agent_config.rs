//! The vizier's agent configuration (table budgets, sampling, protocols parsed): what the broker holds and
//! hands out with every heartbeat's answer ([`ConfigHolder`]), its checks ([`validate`]), and how a PEM
//! applies a new version live, without a restart ([`PemApplier`]).
//!
//! Owns the rules of a configuration; must not know how it travels (that is `cluster`'s registration) nor
//! change the tables' or the tracker's code (it calls `Table::set_budget` and the collector's
//! `LiveSettings`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loupe_collector::LiveSettings;
use loupe_proto::clusterpb::AgentConfig;
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
    if config.table_budget_bytes.len() > MAX_ENTRIES || config.protocols.len() > MAX_ENTRIES {
        return Err(ConfigError::TooLarge);
    }
    for (table, &bytes) in &config.table_budget_bytes {
        if !loupe_schema::all_tables().iter().any(|t| t.name == table) {
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
    pub fn set(&self, mut config: AgentConfig, expected_version: u64) -> Result<AgentConfig, ConfigError> {
        validate(&config)?;
        let mut current = self.lock();
        if expected_version != 0 && expected_version != current.version {
            return Err(ConfigError::Conflict { current: current.version, expected: expected_version });
        }
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
}

impl PemApplier {
    /// Applies to `store`, and to the tracer's `live` settings when it traces.
    pub fn new(store: Arc<Store>, live: Option<Arc<LiveSettings>>) -> Self {
        PemApplier { store, live }
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
        Ok(())
    }

    /// As an [`Applier`].
    pub fn into_applier(self) -> Applier {
        Arc::new(move |c| self.apply(c))
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
}
