//! Unifies the features of third-party crates across the workspace (see Cargo.toml): no
//! code, only dependencies.
