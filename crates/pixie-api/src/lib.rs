//! Pixie's public query format for Loupe's results: a wire adapter between Loupe's query API
//! (`loupe.vizier.v1`, Arrow IPC) and Pixie's (`px.api.vizierpb`, typed column batches), so Pixie's own clients
//! (`pxapi`, the Go CLI) read a Loupe vizier's answers.
//!
//! `convert` maps schemas to `Relation`s (data and semantic types), record batches to `RowBatchData`, and
//! statuses and stats to Pixie's; `Converter` turns one query's stream of Loupe responses into Pixie's, in
//! order. `jwe` encrypts each batch for the client when it asks (`encryption_options`), so the rows cross the
//! cloud sealed.
//!
//! Owns the format mapping and the encryption. Must not run queries, check credentials or know transports.

pub mod convert;
pub mod jwe;

pub use convert::{ConvertError, Converter};
pub use jwe::{Encryptor, JweError};
