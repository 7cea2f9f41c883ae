//! plasma-server's integration tests, in one binary (one link instead of one per file):
//! real servers on 127.0.0.1 port 0 and the real binary restarted. Every server keeps its
//! own metrics, so tests that read counters do not see each other's requests.

mod common;

mod api;
mod lifecycle;
mod untrusted;
