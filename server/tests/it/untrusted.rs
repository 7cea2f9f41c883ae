//! Untrusted experience against a real server: bounds, identity, per-agent limits,
//! provenance and deletion.

use plasma_protocol::wire;
use serde_json::{Value, json};

use crate::common::*;

const ADMIN: &str = "admin-token-0123456789";
const ROBOT: &str = "robot-token-0123456789";

fn tokens() -> String {
    format!(
        "[[auth.tokens]]\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n\
         [[auth.tokens]]\ntoken = \"{ROBOT}\"\nrole = \"agent\"\nagents = [\"robot-1\", \"robot-2\"]\n"
    )
}

async fn send(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = s.http.request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

/// Polls a job with the admin token until it ends.
async fn wait(s: &TestServer, id: &str) -> Value {
    for _ in 0..2400 {
        let (status, job, _) =
            send(s, reqwest::Method::GET, &format!("/jobs/{id}"), ADMIN, None).await;
        assert_eq!(status, 200, "{job}");
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end in 120 s");
}

async fn transitions(s: &TestServer) -> u64 {
    let (status, task, _) = send(s, reqwest::Method::GET, "/tasks/CartPole-v1", ADMIN, None).await;
    if status == 404 {
        return 0;
    }
    task["transitions"].as_u64().unwrap()
}

#[tokio::test]
async fn values_outside_the_spaces_are_refused_whole_in_both_forms() {
    let s = TestServer::start("").await;
    upload_cartpole(&s, "a", 50).await;
    // CartPole-v1's cart position lies in [-4.8, 4.8].
    let mut batch = cartpole_batch("a", 30, 3);
    batch.transitions[17].next_obs[0] = 1e30;
    let (status, body) = s
        .post("/experience", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_experience");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("transition 17") && message.contains("next_obs[0]"),
        "{message}"
    );
    let (status, body) = s
        .post_raw(
            "/experience",
            wire::CONTENT_TYPE,
            wire::encode(&batch).unwrap(),
        )
        .await;
    assert_eq!(status, 422, "binary form: {body}");
    // An action outside the action space.
    let mut batch = cartpole_batch("a", 10, 4);
    batch.transitions[3].action = plasma_protocol::Action::Discrete(2);
    let (status, body) = s
        .post("/experience", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("transition 3"),
        "{body}"
    );
    // Nothing of either batch was stored.
    assert_eq!(s.get("/tasks/CartPole-v1").await.1["transitions"], 50);
    let (_, metrics) = (
        200,
        s.http
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        metrics.contains("plasma_experience_refused_total{reason=\"invalid_experience\"} 3"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_token_speaks_only_for_its_agents() {
    let s = TestServer::start(&tokens()).await;
    let own = serde_json::to_value(cartpole_batch("robot-1", 20, 1)).unwrap();
    let other = serde_json::to_value(cartpole_batch("robot-3", 20, 1)).unwrap();
    let (status, body, _) = send(&s, reqwest::Method::POST, "/experience", ROBOT, Some(&own)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = send(
        &s,
        reqwest::Method::POST,
        "/experience",
        ROBOT,
        Some(&other),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "wrong_agent");
    let sim = json!({ "agent_id": "robot-3", "task_description": "CartPole-v1" });
    let (status, body, _) = send(&s, reqwest::Method::POST, "/simulate", ROBOT, Some(&sim)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("wrong_agent")),
        "{body}"
    );
    // Deployment reports too: its own agent's, not another's.
    let report = json!({ "base": "ab".repeat(32), "since": 1.0, "change": "install" });
    let (status, body, _) = send(
        &s,
        reqwest::Method::PUT,
        "/agents/robot-1/deployment",
        ROBOT,
        Some(&report),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = send(
        &s,
        reqwest::Method::PUT,
        "/agents/robot-3/deployment",
        ROBOT,
        Some(&report),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("wrong_agent")),
        "{body}"
    );
    // An admin speaks for every agent.
    let (status, body, _) = send(
        &s,
        reqwest::Method::POST,
        "/experience",
        ADMIN,
        Some(&other),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(transitions(&s).await, 40);
    s.stop().await;
}

#[tokio::test]
async fn per_agent_limits_answer_429_with_stable_codes() {
    let s = TestServer::start(
        "[limits]\nmax_agent_task_transitions = 100\nagent_requests_per_minute = 4\n",
    )
    .await;
    let batch = |agent: &str, n: usize| serde_json::to_value(cartpole_batch(agent, n, 2)).unwrap();
    assert_eq!(s.post("/experience", &batch("a", 60)).await.0, 201);
    let (status, body) = s.post("/experience", &batch("a", 41)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "agent_quota_exceeded");
    // Another agent has its own quota.
    assert_eq!(s.post("/experience", &batch("b", 100)).await.0, 201);
    // Four requests a minute: a's two and two more pass, the fifth waits.
    assert_eq!(s.post("/experience", &batch("a", 40)).await.0, 201);
    let (status, body) = s.post("/experience", &batch("a", 1)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("agent_quota_exceeded"))
    );
    let r = s
        .http
        .post(s.url("/experience"))
        .json(&batch("a", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "plasma_experience_refused_total{reason=\"agent_quota_exceeded\"} 2",
        "plasma_experience_refused_total{reason=\"rate_limited\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(transitions(&s).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn an_admin_lists_and_deletes_one_agents_experience() {
    let s = TestServer::start(&tokens()).await;
    for (agent, seed) in [("robot-1", 1), ("robot-2", 2), ("robot-1", 3)] {
        let b = serde_json::to_value(cartpole_batch(agent, 40, seed)).unwrap();
        assert_eq!(
            send(&s, reqwest::Method::POST, "/experience", ROBOT, Some(&b))
                .await
                .0,
            201
        );
    }
    let get = reqwest::Method::GET;
    let (status, listing, _) =
        send(&s, get.clone(), "/experience?task=CartPole-v1", ADMIN, None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["transitions"], 120);
    let chunks = listing["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 3);
    let fingerprint = chunks[0]["token"].as_str().unwrap();
    assert!(
        fingerprint.starts_with("sha256:") && !fingerprint.contains(ROBOT),
        "{fingerprint}"
    );
    assert_eq!(chunks[1]["agent_id"], "robot-2");
    // Agents may not read or delete provenance.
    let (status, _, _) = send(&s, get.clone(), "/experience?task=CartPole-v1", ROBOT, None).await;
    assert_eq!(status, 403);
    let delete = reqwest::Method::DELETE;
    let path = "/experience?task=CartPole-v1&agent_id=robot-1";
    assert_eq!(send(&s, delete.clone(), path, ROBOT, None).await.0, 403);

    // A simulation fits a model on all 120 transitions.
    let sim =
        json!({ "agent_id": "robot-2", "task_description": "CartPole-v1", "num_trajectories": 4 });
    let (status, job, _) = send(&s, reqwest::Method::POST, "/simulate", ADMIN, Some(&sim)).await;
    assert_eq!(status, 202, "{job}");
    let done = wait(&s, job["simulation_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "complete", "{done}");

    let (status, deletion, _) = send(&s, delete.clone(), path, ADMIN, None).await;
    assert_eq!(status, 200, "{deletion}");
    assert_eq!(
        (deletion["transitions"].as_u64(), deletion["chunks"].clone()),
        (Some(80), json!([0, 2]))
    );
    assert!(deletion["by"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        send(&s, delete, path, ADMIN, None).await.0,
        404,
        "nothing left to delete"
    );
    let (_, listing, _) = send(&s, get.clone(), "/experience?task=CartPole-v1", ADMIN, None).await;
    assert_eq!(listing["transitions"], 40);
    let (_, task, _) = send(&s, get, "/tasks/CartPole-v1", ADMIN, None).await;
    assert_eq!(
        (task["transitions"].as_u64(), task["agents"].clone()),
        (Some(40), json!(["robot-2"]))
    );
    assert_eq!(task["deletions"][0]["agent_id"], "robot-1");

    // The same amount of other data: the model is fitted again, not loaded from the
    // checkpoint of data that included the deleted experience.
    let b = serde_json::to_value(cartpole_batch("robot-1", 80, 9)).unwrap();
    assert_eq!(
        send(&s, reqwest::Method::POST, "/experience", ROBOT, Some(&b))
            .await
            .0,
        201
    );
    let (_, job, _) = send(&s, reqwest::Method::POST, "/simulate", ADMIN, Some(&sim)).await;
    let done = wait(&s, job["simulation_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "complete", "{done}");
    let fit = &done["result"]["world_model"];
    assert_eq!(
        (fit["transitions"].as_u64(), fit["fitted"].as_bool()),
        (Some(120), Some(true)),
        "{fit}"
    );
    s.stop().await;
}

/// Four honest agents (different seeds) and one whose next observations are taken from
/// other transitions of its own (real, inside the bounds): the shared model's per-agent
/// check flags the poisoner in the job's audit, and with `exclude_flagged_agents` its
/// data is left out of the fit.
#[tokio::test]
async fn a_poisoning_agent_is_flagged_and_can_be_left_out() {
    const BETTER_MODEL: &str = "[compute.ensemble]\nhidden = [64, 64]\n\
        [compute.world_model_train]\nmax_epochs = 30\nbatch_size = 64\n";
    for exclude in [false, true] {
        let s = TestServer::start(&format!(
            "{BETTER_MODEL}[compute]\nexclude_flagged_agents = {exclude}\n"
        ))
        .await;
        for seed in 0..5u64 {
            let agent = if seed == 4 {
                "poisoner".to_owned()
            } else {
                format!("honest-{seed}")
            };
            let mut batch = cartpole_batch(&agent, 400, 100 + seed);
            if seed == 4 {
                let next: Vec<Vec<f32>> = batch
                    .transitions
                    .iter()
                    .map(|t| t.next_obs.clone())
                    .collect();
                for (i, t) in batch.transitions.iter_mut().enumerate() {
                    t.next_obs = next[(i + 97) % next.len()].clone();
                }
            }
            let (status, body) = s
                .post("/experience", &serde_json::to_value(&batch).unwrap())
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let (status, job) = s.post("/simulate", &simulate_body("honest-0")).await;
        assert_eq!(status, 202, "{job}");
        let done = s
            .wait_job(job["simulation_id"].as_str().unwrap(), 300)
            .await;
        assert_eq!(done["status"], "complete", "{done}");
        let result = &done["result"];
        let check = &result["audit"]["agents"];
        assert_eq!(check["compared"], true, "{check}");
        assert_eq!(check["flagged"], json!(["poisoner"]), "{check:#}");
        let advice = result["audit"]["agents_advice"].as_str().unwrap();
        assert!(advice.contains("condition task"), "{advice}");
        let fit = &result["world_model"];
        if exclude {
            assert_eq!(fit["excluded_agents"], json!(["poisoner"]), "{fit}");
            assert_eq!(fit["transitions"], 1600, "{fit}");
        } else {
            assert!(fit.get("excluded_agents").is_none(), "{fit}");
            assert_eq!(fit["transitions"], 2000, "{fit}");
        }
        s.stop().await;
    }
}

/// A condition's adapter fine-tunes the world model its base was distilled in, unless
/// that model saw experience deleted since: then it fits a fresh one.
#[tokio::test]
async fn a_prior_fitted_on_deleted_data_is_not_reused() {
    let s = TestServer::start("").await;
    upload_cartpole(&s, "robot-1", 60).await;
    upload_cartpole(&s, "robot-2", 60).await;
    let (st, tr) = s
        .post("/train", &json!({ "agent_id": "robot-1", "task_name": "CartPole-v1", "mode": "base", "num_simulations": 40, "use_phantom_paths": false }))
        .await;
    assert_eq!(st, 202, "{tr}");
    let base_id = tr["training_id"].as_str().unwrap().to_owned();
    assert_eq!(s.wait_job(&base_id, 120).await["status"], "complete");
    let (_, cartpole) = s.get("/tasks/CartPole-v1").await;
    let mut spec = cartpole["spec"].clone();
    spec["name"] = json!("CartPole-heavy");
    assert_eq!(s.post("/tasks", &spec).await.0, 201);
    let mut batch = cartpole_batch("robot-3", 60, 11);
    batch.task_name = "CartPole-heavy".into();
    assert_eq!(
        s.post("/experience", &serde_json::to_value(&batch).unwrap())
            .await
            .0,
        201
    );
    let before = adapter_job(&s, &base_id).await;
    assert_eq!(
        before["result"]["world_model"]["fine_tuned"], true,
        "{before}"
    );
    let r = s
        .http
        .delete(s.url("/experience?task=CartPole-v1&agent_id=robot-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = adapter_job(&s, &base_id).await;
    assert_eq!(after["status"], "complete", "{after}");
    let wm = &after["result"]["world_model"];
    assert_eq!(
        (wm["prior"].clone(), wm["fine_tuned"].clone()),
        (Value::Null, json!(false)),
        "{wm}"
    );
}

/// Trains an adapter for CartPole-heavy on `base_id` and waits for it.
async fn adapter_job(s: &TestServer, base_id: &str) -> Value {
    let body = json!({ "agent_id": "robot-3", "task_name": "CartPole-heavy", "mode": "adapter", "base_training": base_id, "num_simulations": 40, "lora_rank": 2, "use_phantom_paths": false });
    let (st, tr) = s.post("/train", &body).await;
    assert_eq!(st, 202, "{tr}");
    s.wait_job(tr["training_id"].as_str().unwrap(), 120).await
}
