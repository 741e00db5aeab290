//! MySQL and MariaDB (client/server protocol 10): a packet framer per direction and the
//! per-connection entry point [`MysqlConn`], which pairs each command (`COM_QUERY`,
//! `COM_STMT_PREPARE`, `COM_STMT_EXECUTE`, ...) with its response in order: OK, ERR, or a result
//! set (text or binary rows, with or without EOF packets as the capabilities negotiated).
//!
//! Owns everything MySQL: framing, the handshake (its capabilities; the auth responses are never
//! kept, so no credential reaches a record), commands and responses with their column values,
//! prepared statement texts by id, and pairing. Must not touch other protocols, I/O or table rows.

mod conn;

pub use conn::{
    COM_QUERY, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_PREPARE, Command, MysqlConfig, MysqlConn, MysqlStats, Record,
    Response, STATUS_ERR, STATUS_NONE, STATUS_OK, looks_like_greeting,
};

#[cfg(test)]
mod tests;
