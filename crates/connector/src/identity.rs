//! The vizier's identity, kept across restarts in `<data dir>/vizier-identity.json`: its id, name and
//! credential from the cloud, and the cluster uid it registers with. The file is written whole (temp file and
//! rename), 0600, in a 0700 directory: the credential lets anyone act as this vizier.
//!
//! Owns the file. Must not talk to the cloud.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ConnectorError;

/// The identity file's name in the data dir.
pub const IDENTITY_FILE: &str = "vizier-identity.json";

/// What the vizier keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// The cluster uid this vizier registers with (given, or generated once).
    pub cluster_uid: String,
    /// The id the cloud gave; empty before the first registration.
    pub vizier_id: String,
    /// The name the cloud gave.
    pub vizier_name: String,
    /// The bridge credential.
    pub credential: String,
}

impl Identity {
    /// Reads the identity saved in `data_dir`, if any.
    pub fn load(data_dir: &Path) -> Result<Option<Identity>, ConnectorError> {
        let path = data_dir.join(IDENTITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| ConnectorError::Identity {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConnectorError::Identity { path, source }),
        }
    }
}

/// The identity and where it lives.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    identity: Identity,
}

impl Store {
    /// Creates the data dir (0700) if needed and reads the identity.
    pub(crate) fn open(dir: &Path) -> Result<Store, ConnectorError> {
        let err = |source| ConnectorError::Identity { path: dir.to_path_buf(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        let identity = Identity::load(dir)?.unwrap_or_default();
        Ok(Store { dir: dir.to_path_buf(), identity })
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Sets the cluster uid: the configured one, else the saved one, else a new random one; saved.
    pub(crate) fn ensure_cluster_uid(&mut self, configured: &str) -> Result<(), ConnectorError> {
        let uid = if !configured.is_empty() {
            configured.to_owned()
        } else if !self.identity.cluster_uid.is_empty() {
            return Ok(());
        } else {
            let mut b = [0u8; 16];
            getrandom::fill(&mut b)
                .map_err(|e| ConnectorError::Identity { path: self.dir.clone(), source: std::io::Error::other(e) })?;
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        if uid != self.identity.cluster_uid {
            let mut next = self.identity.clone();
            next.cluster_uid = uid;
            self.save(next)?;
        }
        Ok(())
    }

    /// Replaces the identity, on disk first.
    pub(crate) fn save(&mut self, identity: Identity) -> Result<(), ConnectorError> {
        let path = self.dir.join(IDENTITY_FILE);
        let tmp = self.dir.join(format!(".{IDENTITY_FILE}.tmp"));
        let err = |source| ConnectorError::Identity { path: path.clone(), source };
        let bytes = serde_json::to_vec_pretty(&identity).map_err(|e| err(std::io::Error::other(e)))?;
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(err)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        self.identity = identity;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_private_and_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("loupe-connector-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        let mut store = Store::open(&data).expect("open");
        store.ensure_cluster_uid("").expect("uid");
        let uid = store.identity().cluster_uid.clone();
        assert_eq!(uid.len(), 32);
        let id = Identity {
            cluster_uid: uid.clone(),
            vizier_id: "v".into(),
            vizier_name: "n".into(),
            credential: "c".into(),
        };
        store.save(id.clone()).expect("save");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(IDENTITY_FILE)), 0o600);
        let mut again = Store::open(&data).expect("reopen");
        assert_eq!(again.identity(), &id);
        // A generated uid is kept; a configured one wins.
        again.ensure_cluster_uid("").expect("uid");
        assert_eq!(again.identity().cluster_uid, uid);
        again.ensure_cluster_uid("given").expect("uid");
        assert_eq!(Identity::load(&data).expect("load").expect("some").cluster_uid, "given");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
