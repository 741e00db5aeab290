//! The metastore's error type and the one place sqlx errors are classified.
//!
//! Owns `MetastoreError`, `Result` and the mapping from `sqlx::Error` (both backends) to a variant.
//! Must not touch: SQL text or connection handling; callers pass the entity name for context.

use std::borrow::Cow;

/// A boxed error kept as the `source` of `Unavailable` and `Internal`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with `MetastoreError` as the default error.
pub type Result<T, E = MetastoreError> = std::result::Result<T, E>;

/// Everything a `Metastore` call can fail with, the same on SQLite and Postgres.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// The row does not exist, or it belongs to another org (the two are deliberately indistinguishable).
    #[error("{entity} not found")]
    NotFound {
        /// What was looked up, e.g. `"user"`.
        entity: &'static str,
    },
    /// A uniqueness rule was violated (org name, user email, script name per org, key hash, …).
    #[error("{entity} already exists")]
    AlreadyExists {
        /// What could not be created twice, e.g. `"script"`.
        entity: &'static str,
    },
    /// The database cannot be reached (connection refused or reset, server shutting down, pool timeout).
    #[error("metastore database is unavailable (is the database server running and reachable?)")]
    Unavailable {
        /// The underlying connection error.
        source: BoxError,
    },
    /// The request is invalid: a bad field value, an expired or used invitation, a bad URL.
    #[error("invalid metastore request: {reason}")]
    Invalid {
        /// Why, in lowercase words, safe to show to the caller.
        reason: String,
    },
    /// Anything else: a bug, a schema mismatch, a failed migration.
    #[error("metastore internal error")]
    Internal {
        /// The underlying error.
        source: BoxError,
    },
}

impl MetastoreError {
    /// Builds an `Invalid` error from a reason.
    pub fn invalid(reason: impl Into<String>) -> Self {
        MetastoreError::Invalid { reason: reason.into() }
    }

    /// Builds an `Internal` error from any error or message.
    pub(crate) fn internal(source: impl Into<BoxError>) -> Self {
        MetastoreError::Internal { source: source.into() }
    }

    /// True if the database could not be reached; callers may retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, MetastoreError::Unavailable { .. })
    }
}

/// A sqlx error seen on a query about `entity`, classified.
///
/// Unique violations become `AlreadyExists { entity }`, `RowNotFound` becomes `NotFound { entity }`,
/// connection trouble becomes `Unavailable`, bad data (e.g. a NUL byte Postgres rejects) becomes `Invalid`.
pub(crate) fn classify(err: sqlx::Error, entity: &'static str) -> MetastoreError {
    match err {
        sqlx::Error::RowNotFound => MetastoreError::NotFound { entity },
        sqlx::Error::PoolTimedOut => MetastoreError::Unavailable {
            source: "timed out waiting for a database connection (server down, unreachable or pool exhausted)".into(),
        },
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            MetastoreError::Unavailable { source: Box::new(err) }
        }
        sqlx::Error::Database(db) => classify_database(db, entity),
        sqlx::Error::Encode(_) | sqlx::Error::InvalidArgument(_) => MetastoreError::invalid(err.to_string()),
        other => MetastoreError::internal(other),
    }
}

fn classify_database(db: Box<dyn sqlx::error::DatabaseError>, entity: &'static str) -> MetastoreError {
    if db.is_unique_violation() {
        return MetastoreError::AlreadyExists { entity };
    }
    if db.is_foreign_key_violation() {
        return MetastoreError::NotFound { entity: "referenced row" };
    }
    if db.is_check_violation() {
        return MetastoreError::invalid(format!("{entity} violates a constraint: {}", db.message()));
    }
    let code: Option<Cow<'_, str>> = db.code();
    let code = code.as_deref().unwrap_or("");
    let unavailable = if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        match code {
            // 22xxx data exceptions, e.g. 22021 "invalid byte sequence" for a NUL byte in text
            c if c.starts_with("22") => {
                return MetastoreError::invalid(format!("bad {entity} value: {}", db.message()));
            }
            // 08xxx connection exceptions, 57P01-57P03 shutdown/cannot connect now, 53300 too many connections
            c => c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300"),
        }
    } else {
        // SQLite result codes: the primary code is the low byte of the extended code.
        // 5 BUSY and 6 LOCKED (after busy_timeout), 10 IOERR, 13 FULL, 14 CANTOPEN.
        let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
        matches!(primary, 5 | 6 | 10 | 13 | 14)
    };
    if unavailable {
        MetastoreError::Unavailable { source: Box::new(sqlx::Error::Database(db)) }
    } else {
        MetastoreError::internal(sqlx::Error::Database(db))
    }
}

/// Returns a closure for `map_err` that classifies a sqlx error about `entity`.
pub(crate) fn db_err(entity: &'static str) -> impl Fn(sqlx::Error) -> MetastoreError {
    move |err| classify(err, entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_not_found_names_the_entity() {
        let err = classify(sqlx::Error::RowNotFound, "script");
        assert!(matches!(err, MetastoreError::NotFound { entity: "script" }));
        assert_eq!(err.to_string(), "script not found");
    }

    #[test]
    fn pool_timeout_and_io_are_unavailable() {
        let err = classify(sqlx::Error::PoolTimedOut, "user");
        assert!(err.is_unavailable());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(classify(sqlx::Error::Io(io), "user").is_unavailable());
        assert!(classify(sqlx::Error::PoolClosed, "user").is_unavailable());
    }

    #[test]
    fn other_errors_are_internal() {
        let err = classify(sqlx::Error::Protocol("garbled".into()), "org");
        assert!(matches!(err, MetastoreError::Internal { .. }));
    }
}
