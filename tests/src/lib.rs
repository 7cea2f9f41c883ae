//! Helpers of the end-to-end tests: a real plasma-server on 127.0.0.1 port 0 with tiny
//! compute settings, and real CartPole experience.

use std::path::Path;

use plasma_client::episodes::random_experience;
use plasma_client::protocol::Transition;
use plasma_client::{ClientConfig, PlasmaClient, RetryPolicy};
use plasma_envs::Physics;
use plasma_server::config::Config;
use plasma_server::{RunningServer, start};

/// Compute settings small enough that a training job takes seconds.
pub const TINY: &str = r#"
[server]
host = "127.0.0.1"
port = 0
shutdown_grace_secs = 5

[compute]
min_transitions = 20
simulate_horizon = 5
max_trajectories = 8
phantom_horizon = 5

[compute.ensemble]
members = 2
hidden = [16]

[compute.world_model_train]
max_epochs = 3
batch_size = 32

[compute.planner]
horizon = 4
population = 16
iterations = 1
elites = 4

[compute.policy]
hidden = [8]

[compute.distill]
iterations = 1
initial_labels = 32
paths = 8
horizon = 5
labels_per_round = 16
label_batch = 32

[compute.distill.fit]
epochs = 3
batch_size = 32

[packets]
compression_level = 3

[log]
filter = "warn"
"#;

/// Starts a server with [`TINY`] settings storing under `data_dir`.
pub async fn start_server(data_dir: &Path) -> RunningServer {
    start_server_with(data_dir, "").await
}

/// [`start_server`] with `extra` configuration laid over [`TINY`].
pub async fn start_server_with(data_dir: &Path, extra: &str) -> RunningServer {
    let mut config = Config::from_layers(&[("tiny", TINY), ("extra", extra)]).expect("config");
    config.storage.data_dir = data_dir.to_path_buf();
    start(config).await.expect("server starts")
}

/// A client of `server` with quick retries.
pub fn client_of(server: &RunningServer) -> PlasmaClient {
    let mut config = ClientConfig::new(format!("http://{}", server.local_addr()));
    config.retry = RetryPolicy {
        attempts: 3,
        base_delay: std::time::Duration::from_millis(20),
        max_delay: std::time::Duration::from_millis(200),
    };
    PlasmaClient::new(config).expect("client")
}

/// `steps` real CartPole transitions under seeded random actions.
pub fn cartpole_experience(steps: usize, physics: &Physics, seed: u64) -> Vec<Transition> {
    random_experience("CartPole-v1", physics, steps, seed).expect("episodes")
}
