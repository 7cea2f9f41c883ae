//! plasma-e2e's tests, in one binary (one link instead of one per file): the edge loop
//! over real sockets, a client failing over between servers, and the dashboard in a real
//! browser.

mod dashboard;
mod edge_loop;
mod failover;
