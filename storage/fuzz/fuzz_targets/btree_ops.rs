//! Fuzz target: the input bytes are a sequence of B+tree operations (puts, deletes, ranges,
//! commits durable or unsynced, syncs, aborts, reopens, crashes, and commits or syncs that fail
//! part-way followed by a crash), checked against a `BTreeMap` model. The interpreter lives in
//! `src/ops.rs` so the storage tests can replay it.

#![no_main]

#[path = "../src/ops.rs"]
mod ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ops::run(data));
