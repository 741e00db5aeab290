//! Compiler tests: one per construct, one per error kind.
