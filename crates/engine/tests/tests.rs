//! Integration tests of `loupe-engine`: PxL scripts over synthetic `http_events` in a real
//! store, with exact expected tables (one test binary, modules by concern).

mod bundled;
mod cluster;
mod common;
mod functions;
mod golden;
mod golden_files;
mod limits;
mod pxviews;
mod shared;
mod tables;
