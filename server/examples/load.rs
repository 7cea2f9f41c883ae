//! A small load generator: requests/s and latency of `GET /health` and of packet
//! downloads with N concurrent connections (64 by default).
//!
//! Without `--url` it starts its own server on 127.0.0.1 (tiny compute settings, a temp
//! data directory), uploads CartPole experience, trains and compiles a packet, then
//! measures; with `--url` it measures a running server (pass `--packet` with an id or an
//! agent id to include downloads, and `--token` if the server needs one). The load
//! generator shares the machine with an in-process server: the figures are a floor.
//!
//! ```text
//! cargo run --release -p plasma-server --example load -- --connections 64 --seconds 10
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use plasma_envs::make;
use plasma_protocol::{Action, ExperienceBatch, Transition};
use plasma_server::config::Config;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// A running server (default: start one in-process).
    #[arg(long)]
    url: Option<String>,
    /// Packet id or agent id to download (with --url).
    #[arg(long)]
    packet: Option<String>,
    /// Bearer token.
    #[arg(long)]
    token: Option<String>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const TINY: &str = r#"
[server]
host = "127.0.0.1"
port = 0
[compute.ensemble]
members = 2
hidden = [32]
[compute.world_model_train]
max_epochs = 5
[compute.planner]
horizon = 8
population = 32
iterations = 1
elites = 4
[compute.distill]
iterations = 1
initial_labels = 64
paths = 16
horizon = 10
labels_per_round = 32
[log]
filter = "warn"
"#;

fn cartpole(steps: usize) -> ExperienceBatch {
    let mut env = make("CartPole-v1").expect("CartPole");
    let mut obs = env.reset(Some(1));
    let mut transitions = vec![];
    for i in 0..steps {
        let action = Action::Discrete((i * 7 % 3 % 2) as u32);
        let step = env.step(action.as_ref()).expect("step");
        transitions.push(Transition {
            obs: obs.clone(),
            action,
            reward: step.reward,
            next_obs: step.obs.clone(),
            terminated: step.terminated,
            truncated: step.truncated,
        });
        obs = if step.done() {
            env.reset(None)
        } else {
            step.obs
        };
    }
    ExperienceBatch {
        agent_id: "bench".into(),
        task_name: "CartPole-v1".into(),
        transitions,
    }
}

async fn prepare(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/experience"))
        .json(&cartpole(400))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("upload: {}", r.text().await?);
    }
    let t: Value = http
        .post(format!("{base}/train"))
        .json(&json!({ "agent_id": "bench", "task_name": "CartPole-v1", "num_simulations": 64 }))
        .send()
        .await?
        .json()
        .await?;
    let id = t["training_id"]
        .as_str()
        .context("no training id")?
        .to_owned();
    loop {
        let j: Value = http
            .get(format!("{base}/jobs/{id}"))
            .send()
            .await?
            .json()
            .await?;
        match j["status"].as_str() {
            Some("complete") => break,
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(100)).await,
            other => bail!("training ended {other:?}: {}", j["error"]),
        }
    }
    let c: Value = http
        .post(format!("{base}/instruction-packet/compile"))
        .json(&json!({ "agent_id": "bench", "force": true }))
        .send()
        .await?
        .json()
        .await?;
    Ok(c["packet_id"].as_str().context("no packet id")?.to_owned())
}

async fn measure(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for _ in 0..connections {
        let (http, url, stop) = (http.clone(), url.to_owned(), stop.clone());
        let token = token.map(str::to_owned);
        workers.push(tokio::spawn(async move {
            let (mut lat, mut bytes, mut errors) = (Vec::new(), 0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut req = http.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) => {
                            bytes += b.len();
                            lat.push(t.elapsed());
                        }
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (lat, bytes, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut bytes, mut errors) = (vec![], 0, 0);
    for w in workers {
        let (l, b, e) = w.await?;
        lat.extend(l);
        bytes += b;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN)
    };
    println!(
        "{url}\n  {connections} connections, {elapsed:.1} s: {} requests, {:.0} req/s, {:.1} MB/s, p50 {:.2} ms, p99 {:.2} ms, errors {errors}",
        lat.len(),
        lat.len() as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        q(0.5),
        q(0.99),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let mut own = None;
    let _dir;
    let (base, packet) = match &args.url {
        Some(url) => (url.trim_end_matches('/').to_owned(), args.packet.clone()),
        None => {
            let dir = tempfile::tempdir()?;
            let mut config = Config::from_layers(&[("bench", TINY)])?;
            config.storage.data_dir = dir.path().to_owned();
            _dir = dir;
            let server = plasma_server::start(config).await?;
            let base = format!("http://{}", server.local_addr());
            own = Some(server);
            println!("preparing a packet on {base} (upload, train, compile)…");
            let packet = prepare(&http, &base).await?;
            (base, Some(packet))
        }
    };
    let token = args.token.as_deref();
    measure(
        &http,
        &format!("{base}/health"),
        token,
        args.connections,
        args.seconds,
    )
    .await?;
    if let Some(p) = packet {
        let url = format!("{base}/instruction-packet/download/{p}");
        measure(&http, &url, token, args.connections, args.seconds).await?;
    }
    if let Some(server) = own {
        server.shutdown().await;
    }
    Ok(())
}
