//! `KeyKind`: the two kinds of long-lived credential, API keys (`px-api-…`) and deploy keys (`px-dep-…`).
//!
//! Owns the names of the kinds only: their plaintext prefix, their stored spelling and the entity name errors
//! use. Shared here so that the auth crate (which generates and hashes keys) and the metastore (which stores
//! them) speak of one type without depending on each other. Must not touch: generation, hashing or storage.

use std::fmt;

/// What a key may be used for, read from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `px-api-…`: acts as the user who owns it, in their org.
    Api,
    /// `px-dep-…`: registers a Vizier into the org; nothing else.
    Deploy,
}

impl KeyKind {
    /// Both kinds, in a fixed order.
    pub const ALL: [KeyKind; 2] = [KeyKind::Api, KeyKind::Deploy];

    /// The textual prefix of keys of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Api => "px-api-",
            KeyKind::Deploy => "px-dep-",
        }
    }

    /// The stored spelling: `"api"` or `"deploy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Deploy => "deploy",
        }
    }

    /// The entity name used in errors and messages: `"api key"` or `"deploy key"`.
    pub fn entity(self) -> &'static str {
        match self {
            KeyKind::Api => "api key",
            KeyKind::Deploy => "deploy key",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored key kind that is neither `"api"` nor `"deploy"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKeyKind(pub String);

impl fmt::Display for UnknownKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown key kind {:?}", self.0)
    }
}

impl std::error::Error for UnknownKeyKind {}

impl std::str::FromStr for KeyKind {
    type Err = UnknownKeyKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyKind::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| UnknownKeyKind(s.to_owned()))
    }
}

impl TryFrom<String> for KeyKind {
    type Error = UnknownKeyKind;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_stored_spelling() {
        for kind in KeyKind::ALL {
            assert_eq!(kind.as_str().parse::<KeyKind>(), Ok(kind));
        }
        assert_eq!((KeyKind::Api.prefix(), KeyKind::Deploy.entity()), ("px-api-", "deploy key"));
        assert_eq!("API".parse::<KeyKind>(), Err(UnknownKeyKind("API".to_owned())));
    }
}
