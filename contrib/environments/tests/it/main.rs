//! plasma-envs' integration tests, in one binary (one link instead of one per file).

mod errors;
mod parity;
mod physics;
mod vector;
