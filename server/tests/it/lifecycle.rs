//! Restarts: what survives a graceful shutdown and a `kill -9` of the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_keeps_everything_and_requeues_running_jobs() {
    let s = TestServer::start(SLOW_PLANNER).await;
    upload_cartpole(&s, "robot-1", 100).await;
    let (st, tr) = s
        .post(
            "/train",
            &json!({ "agent_id": "robot-1", "task_name": "CartPole-v1", "num_simulations": 30 }),
        )
        .await;
    assert_eq!(st, 202, "{tr}");
    let train_id = tr["training_id"].as_str().unwrap().to_owned();
    assert_eq!(s.wait_job(&train_id, 120).await["status"], "complete");

    // A long simulation is running when the server stops.
    let long = json!({ "agent_id": "robot-1", "task_description": "CartPole-v1", "num_trajectories": 32, "horizon": 1000 });
    let (st, sim) = s.post("/simulate", &long).await;
    assert_eq!(st, 202);
    let sim_id = sim["simulation_id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        if s.get(&format!("/jobs/{sim_id}")).await.1["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Compilation does not wait behind the running simulation for the compute slot.
    let (st, c) = s
        .post(
            "/instruction-packet/compile",
            &json!({ "agent_id": "robot-1", "force": true }),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        s.get(&format!("/jobs/{sim_id}")).await.1["status"],
        "running"
    );
    let packet = c["packet_id"].as_str().unwrap().to_owned();
    let key = s.get("/signing-key").await.1["public_key"].clone();
    let dir = s.stop().await;

    let s = TestServer::start_in(dir, SLOW_PLANNER).await;
    // The simulation SIGTERM stopped was recorded queued again; this start runs it.
    let job = s.get(&format!("/jobs/{sim_id}")).await.1;
    assert!(
        matches!(job["status"].as_str(), Some("queued" | "running")),
        "{job}"
    );
    let kinds: Vec<&str> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(kinds.contains(&"requeued"), "{kinds:?}");
    let job = s.wait_job(&sim_id, 300).await;
    assert_eq!(job["status"], "complete", "{job}");
    assert!(job["result"]["mean_return"].is_number(), "{job}");
    assert_eq!(
        s.get(&format!("/train/{train_id}")).await.1["status"],
        "complete"
    );
    assert_eq!(
        s.get("/signing-key").await.1["public_key"],
        key,
        "the key persists"
    );
    let (_, task) = s.get("/tasks/CartPole-v1").await;
    assert_eq!(task["transitions"], 100);
    assert_eq!(task["base_training"], train_id.as_str());
    let r = s
        .http
        .get(s.url("/instruction-packet/download/robot-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-plasma-packet-id"], packet.as_str());
    let (_, hist) = s.get("/train/history/robot-1").await;
    assert_eq!(hist["history"].as_array().unwrap().len(), 1);
    assert_eq!(s.get("/health").await.1["world_model_loaded"], true);
    // The base trained before the restart is reloaded from its stored weights to seed an
    // adapter; the adapter compiles into a packet bound to the base packet.
    let (st, a) = s
        .post(
            "/train",
            &json!({ "agent_id": "robot-1", "task_name": "CartPole-v1", "mode": "adapter", "num_simulations": 30 }),
        )
        .await;
    assert_eq!(st, 202, "{a}");
    assert_eq!(a["mode"], "adapter");
    assert_eq!(a["base_training"], train_id.as_str());
    let adapter_id = a["training_id"].as_str().unwrap().to_owned();
    assert_eq!(s.wait_job(&adapter_id, 120).await["status"], "complete");
    let (st, c) = s
        .post(
            "/instruction-packet/compile",
            &json!({ "agent_id": "robot-1", "trained_lora_path": adapter_id, "force": true }),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["kind"], "adapter");
    assert_eq!(c["base_packet_id"], packet.as_str());
    s.stop().await;
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on port 0 and reads its address from the first stdout line.
fn spawn_binary(data: &std::path::Path, config: &std::path::Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plasma-server"))
        .args(["--port", "0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("plasma-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Proc(child), base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_completed_and_runs_in_flight_jobs_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, slow_tiny()).unwrap();
    let http = reqwest::Client::new();

    let (mut proc, base) = spawn_binary(&data, &config);
    let batch = cartpole_batch("robot-1", 80, 3);
    let r = http
        .post(format!("{base}/experience"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sim = |horizon: usize| json!({ "agent_id": "robot-1", "task_description": "CartPole-v1", "num_trajectories": if horizon > 5 { 32 } else { 4 }, "horizon": horizon });
    let done: Value = http
        .post(format!("{base}/simulate"))
        .json(&sim(5))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done_id = done["simulation_id"].as_str().unwrap().to_owned();
    for _ in 0..1200 {
        let j: Value = http
            .get(format!("{base}/jobs/{done_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["status"] == "complete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running: Value = http
        .post(format!("{base}/simulate"))
        .json(&sim(1000))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let running_id = running["simulation_id"].as_str().unwrap().to_owned();
    // A second one waits behind it for the only compute slot.
    let queued: Value = http
        .post(format!("{base}/simulate"))
        .json(&sim(5))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queued_id = queued["simulation_id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let j: Value = http
            .get(format!("{base}/jobs/{running_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // SIGKILL: no shutdown code runs.
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    drop(proc);

    let (_proc, base) = spawn_binary(&data, &config);
    let j: Value = http
        .get(format!("{base}/jobs/{done_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["status"], "complete", "{j}");
    assert!(j["result"]["mean_return"].is_number());
    let j: Value = http
        .get(format!("{base}/jobs/{running_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The job cut off while running is queued again (its attempt counted), and the one
    // that was waiting behind it too; both run to the end.
    assert!(
        matches!(j["status"].as_str(), Some("queued" | "running")),
        "{j}"
    );
    assert!(
        j["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "requeued"),
        "{j}"
    );
    for id in [&running_id, &queued_id] {
        let mut last = Value::Null;
        for _ in 0..6000 {
            last = http
                .get(format!("{base}/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if !matches!(last["status"].as_str(), Some("queued" | "running")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "complete", "{last}");
    }
    let j: Value = http
        .get(format!("{base}/jobs/{running_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["attempt"], 2, "started before the kill and after it: {j}");
    let task: Value = http
        .get(format!("{base}/tasks/CartPole-v1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["transitions"], 80);
    // The server works on the recovered data.
    let r = http
        .post(format!("{base}/simulate"))
        .json(&sim(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// A job that the process keeps dying under is not retried for ever: after
/// `jobs.max_attempts` starts it fails with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cut_off_max_attempts_times_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tiny.toml");
    std::fs::write(
        &config,
        slow_tiny().replace("[jobs]\n", "[jobs]\nmax_attempts = 1\n"),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let (mut proc, base) = spawn_binary(&data, &config);
    let batch = cartpole_batch("robot-1", 80, 3);
    let r = http
        .post(format!("{base}/experience"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = json!({ "agent_id": "robot-1", "task_description": "CartPole-v1", "num_trajectories": 32, "horizon": 1000 });
    let job: Value = http
        .post(format!("{base}/simulate"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["simulation_id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let j: Value = http
            .get(format!("{base}/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    drop(proc);
    let (_proc, base) = spawn_binary(&data, &config);
    let j: Value = http
        .get(format!("{base}/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["error"]["code"], "attempts_exhausted", "{j}");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped 1 times"),
        "{j}"
    );
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `GET /jobs/{id}` until the job has ended.
async fn wait_ended(http: &reqwest::Client, base: &str, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..6000 {
        last = get_json(http, format!("{base}/jobs/{id}")).await;
        if !matches!(last["status"].as_str(), Some("queued" | "running")) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end: {last}");
}

/// kill -9 while a training job runs, then while compilations are in flight: the training
/// runs again and ends with one result and one history entry; every compilation that was
/// accepted ends complete with exactly one packet (a rerun stores the same packet, not a
/// second one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_training_and_compilation_writes_each_result_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tiny.toml");
    // A world-model fit long enough (about a second) for the kill to land in it.
    std::fs::write(
        &config,
        slow_tiny().replace("max_epochs = 3", "max_epochs = 1500\npatience = 1500"),
    )
    .unwrap();
    let http = reqwest::Client::new();

    let (mut proc, base) = spawn_binary(&data, &config);
    let r = http
        .post(format!("{base}/experience"))
        .json(&cartpole_batch("robot-1", 80, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tr: Value = http
        .post(format!("{base}/train"))
        .json(&json!({ "agent_id": "robot-1", "task_name": "CartPole-v1", "num_simulations": 30 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let train_id = tr["training_id"].as_str().unwrap().to_owned();
    // Killed once it computes (its first phase has begun; its start is then on disk).
    for _ in 0..400 {
        if get_json(&http, format!("{base}/jobs/{train_id}")).await["phase"] == "fit_world_model" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    drop(proc);

    let (proc, base) = spawn_binary(&data, &config);
    let job = wait_ended(&http, &base, &train_id).await;
    assert_eq!(job["status"], "complete", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["result"]["training_id"], train_id.as_str(), "{job}");
    let events = job["events"].as_array().unwrap();
    let completed = events.iter().filter(|e| e["event"] == "completed").count();
    assert_eq!(completed, 1, "one result: {events:?}");
    let hist = get_json(&http, format!("{base}/train/history/robot-1")).await;
    assert_eq!(hist["history"].as_array().unwrap().len(), 1, "{hist}");
    let task = get_json(&http, format!("{base}/tasks/CartPole-v1")).await;
    assert_eq!(task["base_training"], train_id.as_str());

    // Compilations with a kill at a spread of moments after the request: before it is
    // read, while it compiles, after it answered.
    let mut proc = proc;
    let mut base = base;
    for delay_ms in [0u64, 1, 2, 4, 8, 16, 40] {
        let url = format!("{base}/instruction-packet/compile");
        let client = http.clone();
        let request = tokio::spawn(async move {
            client
                .post(url)
                .json(
                    &json!({ "agent_id": "robot-1", "trained_lora_path": "latest", "force": true }),
                )
                .send()
                .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        proc.0.kill().unwrap();
        proc.0.wait().unwrap();
        let _ = request.await;
        drop(proc);
        (proc, base) = spawn_binary(&data, &config);
        // What this start resumed ends before the next kill (else one job could be cut
        // off again and again, until `jobs.max_attempts` fails it).
        let listed = get_json(&http, format!("{base}/jobs?kind=compilation&limit=1000")).await;
        for j in listed.as_array().unwrap() {
            wait_ended(&http, &base, j["id"].as_str().unwrap()).await;
        }
    }
    let jobs = get_json(&http, format!("{base}/jobs?kind=compilation&limit=1000")).await;
    let jobs = jobs.as_array().unwrap();
    let mut packets = std::collections::BTreeSet::new();
    let mut reruns = 0;
    for j in jobs {
        let j = wait_ended(&http, &base, j["id"].as_str().unwrap()).await;
        assert_eq!(j["status"], "complete", "{j}");
        let id = j["result"]["packet_id"].as_str().unwrap().to_owned();
        let meta = get_json(&http, format!("{base}/instruction-packet/{id}")).await;
        assert_eq!(
            meta["packet_id"],
            id.as_str(),
            "its packet is stored: {meta}"
        );
        assert!(packets.insert(id), "two compilations, one packet: {j}");
        reruns += usize::from(j["attempt"].as_u64() > Some(1));
    }
    // How many kills landed while a compilation ran (timing decides; printed for the record).
    eprintln!(
        "{} compilations accepted, {reruns} cut off and run again",
        jobs.len()
    );
    let status = get_json(&http, format!("{base}/status")).await;
    assert_eq!(
        status["stored_packets"].as_u64().unwrap() as usize,
        packets.len(),
        "one packet per compilation, none written twice: {status}"
    );
    drop(proc);
}
