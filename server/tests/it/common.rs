//! Test helpers: a real server on 127.0.0.1 port 0 with tiny compute settings, CartPole
//! experience from the reference environment, HTTP and WebSocket clients.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use plasma_envs::make;
use plasma_protocol::{Action, ExperienceBatch, Transition};
use plasma_server::config::Config;
use plasma_server::{RunningServer, start};
use serde_json::{Value, json};

/// Compute settings small enough that a whole job takes a second or two.
pub const TINY: &str = r#"
[server]
host = "127.0.0.1"
port = 0
body_limit_bytes = 262144
shutdown_grace_secs = 5

[jobs]
max_concurrent = 1
queue_capacity = 2

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

[compute.value_planner]
population = 8
iterations = 1
elites = 2
particles = 2

[compute.terminal_value]
iterations = 5
states = 128
hidden = [16]

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

/// Laid over [`TINY`]: a planner slow enough (seconds for a 1000-step simulation of 32
/// paths) that a test can act while such a job runs.
pub const SLOW_PLANNER: &str =
    "[compute]\nmax_trajectories = 32\n[compute.planner]\npopulation = 64\nhorizon = 8\n";

/// [`TINY`] with [`SLOW_PLANNER`]'s values, as one file.
pub fn slow_tiny() -> String {
    TINY.replace("max_trajectories = 8", "max_trajectories = 32")
        .replace("population = 16", "population = 64")
        .replace("horizon = 4\n", "horizon = 8\n")
}

pub fn tiny_config(data_dir: &Path, extra: &str) -> Config {
    let mut c = Config::from_layers(&[("tiny", TINY), ("extra", extra)]).unwrap();
    c.storage.data_dir = data_dir.to_owned();
    c
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub base: String,
    pub ws_base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> TestServer {
        let server = start(tiny_config(dir.path(), extra)).await.unwrap();
        let addr = server.local_addr();
        TestServer {
            server: Some(server),
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            http: reqwest::Client::new(),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls a job until it ends; panics after `secs`.
    pub async fn wait_job(&self, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, job) = self.get(&format!("/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            let s = job["status"].as_str().unwrap_or_default().to_owned();
            if !matches!(s.as_str(), "queued" | "running") {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} still {s}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.dir
    }
}

/// CartPole transitions from uniformly random actions (seeded).
pub fn cartpole_batch(agent: &str, steps: usize, seed: u64) -> ExperienceBatch {
    let mut env = make("CartPole-v1").unwrap();
    let mut obs = env.reset(Some(seed));
    let mut transitions = Vec::with_capacity(steps);
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    for _ in 0..steps {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let action = Action::Discrete(((state >> 33) % 2) as u32);
        let step = env.step(action.as_ref()).unwrap();
        let done = step.done();
        transitions.push(Transition {
            obs: obs.clone(),
            action,
            reward: step.reward,
            next_obs: step.obs.clone(),
            terminated: step.terminated,
            truncated: step.truncated,
        });
        obs = if done { env.reset(None) } else { step.obs };
    }
    ExperienceBatch {
        agent_id: agent.into(),
        task_name: "CartPole-v1".into(),
        transitions,
    }
}

pub async fn upload_cartpole(s: &TestServer, agent: &str, steps: usize) -> Value {
    let (status, body) = s
        .post(
            "/experience",
            &serde_json::to_value(cartpole_batch(agent, steps, 7)).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub fn simulate_body(agent: &str) -> Value {
    json!({ "agent_id": agent, "task_description": "CartPole-v1", "num_trajectories": 4 })
}
