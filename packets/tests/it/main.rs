//! plasma-packets' integration tests, in one binary (one link instead of one per file).
//! `no_alloc` stays a binary of its own: its counting global allocator would count the
//! other tests' allocations.

#[path = "../common/mod.rs"]
mod common;

mod codec;
mod hardening;
mod runtime;
