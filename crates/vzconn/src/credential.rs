//! The vizier credential: what a registered vizier presents on its bridge.
//!
//! Stateless by design: `v1.<org id>.<hex HMAC-SHA256(secret, org id ‖ vizier id)>`, so no column is needed
//! to store it and every replica with the same secret verifies it. The org id rides in clear because the
//! metastore looks viziers up per org; the MAC binds it. Deleting the vizier record revokes it (the bridge
//! also checks that the record exists). Owns issuing and verifying; must not touch the metastore.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use uuid::Uuid;

use crate::VzConnError;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;

const VERSION: &str = "v1";
/// Domain separation: a MAC made with this secret for another purpose never verifies here.
const DOMAIN: &[u8] = b"loupe vizier credential v1\0";

/// The server secret credentials derive from.
#[derive(Clone)]
pub struct CredentialKey(HmacSha256);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(..)")
    }
}

impl CredentialKey {
    /// A key from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self, VzConnError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(VzConnError::WeakSecret { min: MIN_SECRET_BYTES, got: secret.len() });
        }
        // HMAC takes keys of any length; the error cannot happen.
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| VzConnError::WeakSecret { min: 1, got: 0 })?;
        Ok(CredentialKey(mac))
    }

    fn mac(&self, org_id: Uuid, vizier_id: Uuid) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(DOMAIN);
        mac.update(org_id.as_bytes());
        mac.update(vizier_id.as_bytes());
        mac
    }

    /// The credential of vizier `vizier_id` of org `org_id`.
    pub fn issue(&self, org_id: Uuid, vizier_id: Uuid) -> String {
        let tag = self.mac(org_id, vizier_id).finalize().into_bytes();
        format!("{VERSION}.{}.{}", org_id.as_hyphenated(), crate::hex::encode(&tag))
    }

    /// The org of `vizier_id` if `credential` is that vizier's, compared in constant time; `None` otherwise
    /// (malformed, another vizier's, made with another secret).
    pub fn verify(&self, vizier_id: Uuid, credential: &str) -> Option<Uuid> {
        let mut parts = credential.trim().splitn(3, '.');
        let (Some(VERSION), Some(org), Some(hex)) = (parts.next(), parts.next(), parts.next()) else { return None };
        let org_id = Uuid::parse_str(org).ok()?;
        let tag: [u8; 32] = crate::hex::decode(hex)?.try_into().ok()?;
        // `verify_slice` compares in constant time.
        self.mac(org_id, vizier_id).verify_slice(&tag).ok().map(|()| org_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_verifies_only_for_its_vizier_and_secret() {
        let key = CredentialKey::new(&[7; 32]).expect("key");
        let (org, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let cred = key.issue(org, a);
        assert_eq!(cred.len(), 2 + 1 + 36 + 1 + 64);
        assert_eq!(key.verify(a, &cred), Some(org));
        assert_eq!(key.verify(b, &cred), None, "vizier a's credential under b's id");
        let other = CredentialKey::new(&[8; 32]).expect("key");
        assert_eq!(other.verify(a, &cred), None, "another secret");
        // Claiming another org with the same MAC fails: the MAC binds the org.
        let forged = cred.replace(&org.to_string(), &Uuid::new_v4().to_string());
        assert_eq!(key.verify(a, &forged), None);
        for bad in ["", "v1", "v1.x.y", &cred[..cred.len() - 1], &cred.replace("v1.", "v2."), &cred.to_uppercase()] {
            assert_eq!(key.verify(a, bad), None, "{bad:?}");
        }
        assert!(matches!(CredentialKey::new(&[1; 31]), Err(VzConnError::WeakSecret { min: 32, got: 31 })));
    }
}
