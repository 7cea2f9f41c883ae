//! The HTTP and WebSocket API against a real server on 127.0.0.1, port 0.

use std::time::Duration;

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use plasma_packets::PacketContent;
use plasma_packets::codec::Packet;
use plasma_packets::signing::{PublicKey, Verifier};
use plasma_protocol::Action;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn next_json<S>(ws: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("no WebSocket message within 60 s")
            .expect("socket closed")
            .expect("socket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_endpoints_answer_in_their_documented_shapes() {
    let s = TestServer::start("").await;
    let (status, h) = s.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["world_model_loaded"], false);
    assert_eq!(h["active_simulations"], 0);
    assert!(h["timestamp"].as_f64().unwrap() > 1e9);

    assert_eq!(s.get("/ready").await.0, 200);
    let (status, st) = s.get("/status").await;
    assert_eq!(status, 200);
    assert_eq!(st["device"], "cpu");
    assert_eq!(st["queue_depth"], 0);
    assert_eq!(st["open_access"], true);

    let (status, key) = s.get("/signing-key").await;
    assert_eq!(status, 200);
    assert_eq!(key["algorithm"], "ed25519");
    PublicKey::from_hex(key["public_key"].as_str().unwrap()).unwrap();

    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/health",
        "/status",
        "/simulate",
        "/simulate/{simulation_id}",
        "/train",
        "/train/history/{agent_id}",
        "/instruction-packet/compile",
        "/instruction-packet/download/{id}",
        "/experience",
        "/jobs/{id}/cancel",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"]["SimulateRequest"].is_object());
    // Links name their target operation as the specification spells it, and it exists.
    let link = &doc["paths"]["/simulate"]["post"]["responses"]["202"]["links"]["GetJob"];
    assert_eq!(link["operationId"], "get_job", "{link}");
    assert_eq!(doc["paths"]["/jobs/{id}"]["get"]["operationId"], "get_job");
    assert!(link.get("operation_id").is_none(), "{link}");

    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            "plasma_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("plasma_jobs_queued 0"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_json_4xx_with_stable_codes() {
    let s = TestServer::start("").await;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("<none>").to_owned();

    let (st, b) = s
        .post_raw("/simulate", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!((st, code(&b).as_str()), (400, "invalid_json"), "{b}");
    let (st, b) = s
        .post(
            "/simulate",
            &json!({ "agent_id": 5, "task_description": "x" }),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_request"), "{b}");
    let (st, b) = s
        .post("/simulate", &json!({ "task_description": "x" }))
        .await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_request"), "{b}");
    let (st, b) = s.post("/simulate", &simulate_body("a")).await;
    assert_eq!((st, code(&b).as_str()), (404, "unknown_task"), "{b}");
    let (st, b) = s
        .post(
            "/simulate",
            &json!({ "agent_id": "a/../b", "task_description": "CartPole-v1" }),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_identifier"), "{b}");
    let (st, b) = s.post_raw("/simulate", "text/plain", b"{}".to_vec()).await;
    assert_eq!(
        (st, code(&b).as_str()),
        (415, "unsupported_media_type"),
        "{b}"
    );
    let (st, b) = s
        .post(
            "/train",
            &json!({ "agent_id": "a", "task_name": "Nope-v0" }),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (404, "unknown_task"), "{b}");
    let (st, b) = s
        .post(
            "/train",
            &json!({ "agent_id": "a", "task_name": "CartPole-v1", "lora_rank": 0 }),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_request"), "{b}");

    // Oversized bodies: 413 with the JSON error body (limit 256 KiB in the test config).
    let big = vec![b' '; 300 * 1024];
    let (st, b) = s.post_raw("/experience", "application/json", big).await;
    assert_eq!((st, code(&b).as_str()), (413, "payload_too_large"), "{b}");

    // Experience that does not fit its task, unknown tasks, garbage binary.
    let mut batch = cartpole_batch("a", 5, 1);
    batch.transitions[2].obs.pop();
    let (st, b) = s
        .post("/experience", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_experience"), "{b}");
    let mut batch = cartpole_batch("a", 5, 1);
    batch.task_name = "Unknown-v9".into();
    let (st, b) = s
        .post("/experience", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!((st, code(&b).as_str()), (404, "unknown_task"), "{b}");
    let (st, b) = s
        .post_raw(
            "/experience",
            plasma_server::wire::CONTENT_TYPE,
            b"PXB1\x00".to_vec(),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (400, "invalid_binary"), "{b}");
    let (st, b) = s
        .post(
            "/experience",
            &json!({ "agent_id": "a", "task_name": "CartPole-v1", "transitions": [] }),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_experience"), "{b}");

    // Too little experience for a job: a clear 409, not a fake result.
    upload_cartpole(&s, "a", 5).await;
    let (st, b) = s.post("/simulate", &simulate_body("a")).await;
    assert_eq!((st, code(&b).as_str()), (409, "insufficient_data"), "{b}");

    // Unknown ids and routes.
    for (path, c) in [
        ("/jobs/nope", "unknown_job"),
        ("/simulate/nope", "unknown_job"),
        ("/train/nope", "unknown_job"),
        ("/instruction-packet/download/nope", "unknown_packet"),
        (
            "/instruction-packet/download/0000000000000000000000000000000000000000000000000000000000000000",
            "unknown_packet",
        ),
        ("/instruction-packet/nope", "unknown_packet"),
        ("/tasks/nope", "unknown_task"),
        ("/no/such/route", "not_found"),
    ] {
        let (st, b) = s.get(path).await;
        assert_eq!((st, code(&b).as_str()), (404, c), "{path}: {b}");
    }
    let (st, b) = s.post("/jobs/nope/cancel", &json!({})).await;
    assert_eq!((st, code(&b).as_str()), (404, "unknown_job"), "{b}");
    let (st, b) = s
        .post(
            "/instruction-packet/compile",
            &json!({ "agent_id": "a", "trained_lora_path": "train_nope" }),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (404, "unknown_training"), "{b}");
    let (st, b) = s.get("/train/history/bad%20id").await;
    assert_eq!((st, code(&b).as_str()), (422, "invalid_identifier"), "{b}");
    let r = s.http.delete(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let b: Value = r.json().await.unwrap();
    assert_eq!(code(&b), "method_not_allowed");

    // The server is still healthy after all of it.
    assert_eq!(s.get("/health").await.0, 200);
    s.stop().await;
}

/// A refused oversized body is not read to its end, so the server must close that
/// connection and say so; a client that kept it would have its next request fail
/// (hyper's IncompleteMessage), which is what CI once saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_does_not_break_the_next_request_on_the_connection() {
    let s = TestServer::start("").await;
    let batch = serde_json::to_value(cartpole_batch("a", 5, 1)).unwrap();
    for round in 0..200 {
        let r = s
            .http
            .post(s.url("/experience"))
            .header("content-type", "application/json")
            .body(vec![b' '; 300 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413, "round {round}");
        assert_eq!(
            r.headers().get("connection").and_then(|v| v.to_str().ok()),
            Some("close"),
            "round {round}"
        );
        let (st, b) = s.post("/experience", &batch).await;
        assert_eq!(st, 201, "round {round}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_guard_the_endpoints() {
    let admin = "admin-token-0123456789";
    let agent = "agent-token-0123456789";
    let s = TestServer::start(&format!(
        "[[auth.tokens]]\ntoken = \"{admin}\"\nrole = \"admin\"\n[[auth.tokens]]\ntoken = \"{agent}\"\nrole = \"agent\"\n"
    ))
    .await;
    let get = |path: &str, token: Option<&str>| {
        let mut r = s.http.get(s.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get("/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/signing-key", None).await.unwrap().status(), 200);
    let r = get("/status", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "unauthorized");
    assert_eq!(
        get("/status", Some("wrong-token-0123456789"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(get("/status", Some(agent)).await.unwrap().status(), 200);
    assert_eq!(get("/status", Some(admin)).await.unwrap().status(), 200);

    let post = |path: &str, token: &str, body: Value| {
        s.http
            .post(s.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let train = json!({ "agent_id": "a", "task_name": "CartPole-v1" });
    let r = post("/train", agent, train.clone()).await.unwrap();
    assert_eq!(r.status(), 403);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "forbidden");
    // The admin passes auth and reaches the handler (no experience yet: 404).
    assert_eq!(post("/train", admin, train).await.unwrap().status(), 404);
    // Agents upload.
    let batch = serde_json::to_value(cartpole_batch("a", 30, 2)).unwrap();
    assert_eq!(
        post("/experience", agent, batch.clone())
            .await
            .unwrap()
            .status(),
        201
    );
    // A large upload refused before its body is read (wrong token) closes its connection,
    // so the next request on the same client still goes through.
    for round in 0..50 {
        let r = s
            .http
            .post(s.url("/experience"))
            .bearer_auth("wrong-token-0123456789")
            .header("content-type", "application/json")
            .body(vec![b' '; 200 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "round {round}");
        assert_eq!(r.headers()["connection"], "close", "round {round}");
        let r = post("/experience", agent, batch.clone()).await.unwrap();
        assert_eq!(r.status(), 201, "round {round}");
    }
    assert_eq!(
        s.http
            .post(s.url("/experience"))
            .json(&batch)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // WebSockets: a token in the query string.
    assert!(
        tokio_tungstenite::connect_async(format!("{}/ws/a", s.ws_base))
            .await
            .is_err()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws/a?token={agent}", s.ws_base))
        .await
        .unwrap();
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_answers_ping_and_status_and_refuses_junk() {
    let s = TestServer::start("").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws/robot-1", s.ws_base))
        .await
        .unwrap();
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let pong = next_json(&mut ws).await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["timestamp"].as_f64().is_some());
    ws.send(Message::Text(r#"{"type":"status_update"}"#.into()))
        .await
        .unwrap();
    let st = next_json(&mut ws).await;
    assert_eq!(st["type"], "status");
    assert_eq!(st["active_simulations"], 0);
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["error"]["code"], "invalid_json");
    ws.send(Message::Text(r#"{"type":"dance"}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await["error"]["code"],
        "unknown_message_type"
    );
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await["error"]["code"],
        "binary_not_supported"
    );
    // A client id that is not an identifier is refused before the upgrade.
    assert!(
        tokio_tungstenite::connect_async(format!("{}/ws/a%20b", s.ws_base))
            .await
            .is_err()
    );
    s.stop().await;
}

/// The whole loop: experience (JSON and binary) → simulation with WebSocket progress →
/// base training → compile → download and verify → adapter training → adapter packet
/// bound to the base packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experience_to_verified_base_and_adapter_packets() {
    let s = TestServer::start("").await;
    let up = upload_cartpole(&s, "robot-1", 120).await;
    assert_eq!(up["accepted"], 120);
    assert_eq!(up["agent_id"], "robot-1");
    let bin = plasma_server::wire::encode(&cartpole_batch("robot-2", 80, 9)).unwrap();
    let (st, up) = s
        .post_raw("/experience", plasma_server::wire::CONTENT_TYPE, bin)
        .await;
    assert_eq!(st, 201, "{up}");
    assert_eq!(up["total_transitions"], 200);
    let (_, task) = s.get("/tasks/CartPole-v1").await;
    assert_eq!(task["transitions"], 200);
    assert_eq!(task["builtin"], true);

    // Simulation, followed live over the WebSocket.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws/robot-1", s.ws_base))
        .await
        .unwrap();
    let (st, sim) = s.post("/simulate", &simulate_body("robot-1")).await;
    assert_eq!(st, 202, "{sim}");
    assert_eq!(sim["status"], "started");
    let sim_id = sim["simulation_id"].as_str().unwrap().to_owned();
    let mut seqs = vec![];
    let mut kinds = vec![];
    loop {
        let ev = next_json(&mut ws).await;
        assert_eq!(ev["type"], "job_event", "{ev}");
        assert_eq!(ev["job_id"], sim_id.as_str());
        seqs.push(ev["seq"].as_u64().unwrap());
        kinds.push(ev["event"].as_str().unwrap().to_owned());
        if matches!(kinds.last().unwrap().as_str(), "completed" | "failed") {
            break;
        }
    }
    assert_eq!(kinds.last().unwrap(), "completed", "{kinds:?}");
    assert!(
        kinds.contains(&"started".to_owned()) && kinds.contains(&"audit".to_owned()),
        "{kinds:?}"
    );
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let (st, view) = s.get(&format!("/simulate/{sim_id}")).await;
    assert_eq!(st, 200);
    assert_eq!(view["status"], "complete");
    assert_eq!(view["simulation_id"], sim_id.as_str());
    assert_eq!(view["result"]["paths"], 4);
    assert_eq!(view["result"]["horizon"], 5);
    assert!(view["result"]["mean_return"].as_f64().is_some());
    assert!(view["audit"]["approved"].is_boolean(), "{view}");
    // The fit's complete history is kept with the job: one entry per epoch, with each
    // member's held-out error.
    let fit = &view["result"]["world_model"];
    assert_eq!(fit["fitted"], true, "{fit}");
    let history = fit["history"].as_array().expect("the fit's history");
    assert_eq!(
        history.len() as u64,
        fit["epochs"].as_u64().unwrap(),
        "{fit}"
    );
    assert!(
        history
            .iter()
            .all(|e| e["holdout_mse"].as_array().is_some_and(|m| !m.is_empty())),
        "{fit}"
    );
    assert_eq!(s.get("/health").await.1["world_model_loaded"], true);

    // A late subscriber still sees the outcome.
    let (mut late, _) = tokio_tungstenite::connect_async(format!("{}/ws/robot-1", s.ws_base))
        .await
        .unwrap();
    let mut replayed = vec![];
    while replayed
        .last()
        .map(|e: &Value| e["event"] != "completed")
        .unwrap_or(true)
    {
        replayed.push(next_json(&mut late).await);
    }
    assert_eq!(replayed[0]["seq"], 1);

    // Base policy.
    let (st, tr) = s
        .post("/train", &json!({ "agent_id": "robot-1", "task_name": "CartPole-v1", "num_simulations": 50, "learning_rate": 0.003 }))
        .await;
    assert_eq!(st, 202, "{tr}");
    assert_eq!(tr["mode"], "base");
    let base_id = tr["training_id"].as_str().unwrap().to_owned();
    let job = s.wait_job(&base_id, 120).await;
    assert_eq!(job["status"], "complete", "{job}");
    let result = &job["result"];
    assert_eq!(result["mode"], "base");
    assert!(
        result["policy_fit"]["final_loss"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    // Two passes of two rounds: the second after the value's refit on the student's paths.
    assert_eq!(result["rounds"], 4, "{result}");
    // The run keeps its metric history: every distillation round (the fit's epochs are
    // checked on the simulation, which fitted the model this run loaded).
    assert_eq!(
        result["distill"]["rounds"].as_array().map(Vec::len),
        Some(4),
        "{result}"
    );
    assert_eq!(
        result["distill"]["passes"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(
        result["distill"]["chosen_pass"]
            .as_u64()
            .is_some_and(|p| p < 2)
    );
    // CartPole's actions are discrete: the recipe learned a terminal value for its teacher.
    assert!(
        result["terminal_value"]["mean_value"]
            .as_f64()
            .is_some_and(f64::is_finite),
        "{result}"
    );
    assert!(
        job["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["phase"] == "distill")
    );
    // Phantom paths for the dashboard, stored with the run: every start imagined by every
    // member, the real continuation beside it, and every detector against its threshold.
    let phantom = &result["phantom"];
    assert_eq!(phantom["steering"], "policy");
    assert_eq!(phantom["members"], 2);
    let paths = phantom["paths"].as_array().unwrap();
    assert_eq!(
        paths.len(),
        plasma_server::phantom::PHANTOM_STARTS,
        "{phantom}"
    );
    for p in paths {
        let steps = p["imagined"]["mean"].as_array().unwrap().len();
        assert!((1..=5).contains(&steps), "{p}");
        assert_eq!(p["imagined"]["mean"][0].as_array().unwrap().len(), 4);
        if let Some(real) = p["real"].as_object() {
            let n = real["obs"].as_array().unwrap().len();
            assert_eq!(real["reward"].as_array().unwrap().len(), n);
            assert!(real["replayed"]["mean"].as_array().unwrap().len() <= n);
        }
    }
    let detectors = result["audit"]["detectors"].as_array().unwrap();
    assert_eq!(detectors.len(), 6, "{detectors:?}");
    assert!(
        detectors
            .iter()
            .all(|d| d["threshold"].is_number() && d["measured"].is_number())
    );
    // Listings stay small: without the paths, which the job itself serves.
    let (_, listed) = s.get("/jobs?agent_id=robot-1&kind=training").await;
    assert_eq!(listed[0]["id"], base_id.as_str());
    assert!(listed[0]["result"]["rounds"].is_number());
    assert!(
        listed[0]["result"].get("phantom").is_none(),
        "{}",
        listed[0]
    );
    let (_, hist) = s.get("/train/history/robot-1").await;
    assert_eq!(hist["agent_id"], "robot-1");
    assert_eq!(hist["history"][0]["training_id"], base_id.as_str());
    assert_eq!(hist["history"][0]["status"], "complete");
    assert!(hist["history"][0]["result"].get("phantom").is_none());

    // Compile the base (its audit may reject a tiny policy: force records that).
    let (st, c) = s
        .post("/instruction-packet/compile", &json!({ "agent_id": "robot-1", "trained_lora_path": format!("checkpoints/{base_id}"), "force": true }))
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["status"], "compiled");
    assert_eq!(c["kind"], "base");
    let base_packet = c["packet_id"].as_str().unwrap().to_owned();
    // robot-1 reports running it; a malformed report is refused and changes nothing.
    let report = json!({ "base": base_packet, "adapter": null, "since": 1_764_000_000.0, "change": "install" });
    let (st, stored) = s.put("/agents/robot-1/deployment", &report).await;
    assert_eq!(st, 200, "{stored}");
    assert_eq!(stored["agent_id"], "robot-1");
    assert!(stored["reported_at"].as_f64().unwrap() > 1.7e9);
    let (st, e) = s
        .put(
            "/agents/robot-1/deployment",
            &json!({ "base": "not-a-digest", "since": 1.0, "change": "install" }),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "{e}"
    );
    // A report that took effect before the stored one (a late retry) does not replace it.
    let (st, kept) = s
        .put(
            "/agents/robot-1/deployment",
            &json!({ "base": "ab".repeat(32), "since": 1_700_000_000.0, "change": "rollback" }),
        )
        .await;
    assert_eq!(
        (st, &kept),
        (200, &stored),
        "the newer report is kept and answered"
    );
    // The agents, with what each uploaded, the packet compiled for robot-1 and what it runs.
    let (st, agents) = s.get("/agents").await;
    assert_eq!(st, 200, "{agents}");
    assert_eq!(
        agents,
        json!([
            { "agent_id": "robot-1", "tasks": { "CartPole-v1": 120 }, "transitions": 120,
              "latest_packet": base_packet, "deployment": stored },
            { "agent_id": "robot-2", "tasks": { "CartPole-v1": 80 }, "transitions": 80,
              "latest_packet": null, "deployment": null },
        ])
    );
    let key = PublicKey::from_hex(
        s.get("/signing-key").await.1["public_key"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let r = s
        .http
        .get(s.url(c["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, c["packet_size"].as_u64().unwrap());
    let verified = Packet::decode(&bytes, &Verifier::pinned(key)).unwrap();
    assert_eq!(verified.digest.to_hex(), base_packet);
    assert_eq!(verified.packet.provenance.training_run, base_id);
    // By agent id: the latest packet.
    let by_agent = s
        .http
        .get(s.url("/instruction-packet/download/robot-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_agent.bytes().await.unwrap(), bytes);
    let (_, meta) = s.get(&format!("/instruction-packet/{base_packet}")).await;
    assert_eq!(meta["kind"], "base");
    assert_eq!(meta["signed_by"], key.to_hex().as_str());

    // Auto mode now trains an adapter on that base.
    let (st, tr) = s
        .post("/train", &json!({ "agent_id": "robot-2", "task_name": "CartPole-v1", "num_simulations": 40, "lora_rank": 2, "use_phantom_paths": false }))
        .await;
    assert_eq!(st, 202, "{tr}");
    assert_eq!(tr["mode"], "adapter");
    assert_eq!(tr["base_training"], base_id.as_str());
    let ad_id = tr["training_id"].as_str().unwrap().to_owned();
    let job = s.wait_job(&ad_id, 120).await;
    assert_eq!(job["status"], "complete", "{job}");
    assert_eq!(job["result"]["rounds"], 1);
    // The same task's adapter refits the task's own model: no prior.
    assert_eq!(job["result"]["world_model"]["prior"], Value::Null, "{job}");
    let (st, c) = s
        .post(
            "/instruction-packet/compile",
            &json!({ "agent_id": "robot-2", "force": true }),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["kind"], "adapter");
    assert_eq!(c["training_id"], ad_id.as_str());
    // The adapter binds to the base packet already compiled for its base run (robot-1's),
    // so agents running that packet can hot-swap it in.
    let adapter_base = c["base_packet_id"].as_str().unwrap().to_owned();
    assert_eq!(adapter_base, base_packet);
    let bytes = s
        .http
        .get(s.url(c["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let verified = Packet::decode(&bytes, &Verifier::pinned(key)).unwrap();
    match verified.packet.content {
        PacketContent::Adapter { base_digest, .. } => {
            assert_eq!(base_digest.to_hex(), adapter_base)
        }
        other => panic!("expected an adapter, got {:?}", other.kind()),
    }
    let base_bytes = s
        .http
        .get(s.url(c["base_download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    Packet::decode(&base_bytes, &Verifier::pinned(key)).unwrap();
    let (_, status) = s.get("/status").await;
    assert_eq!(status["stored_models"], 2);
    assert_eq!(status["stored_packets"], 2);

    // A changed condition registered as its own task trains an adapter on the base it
    // names; a base that does not fit the task, or is no base, is refused.
    let (_, cartpole) = s.get("/tasks/CartPole-v1").await;
    let mut spec = cartpole["spec"].clone();
    spec["name"] = json!("CartPole-heavy");
    assert_eq!(s.post("/tasks", &spec).await.0, 201);
    let mut batch = cartpole_batch("robot-3", 60, 11);
    batch.task_name = "CartPole-heavy".into();
    let (st, b) = s
        .post("/experience", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, tr) = s
        .post("/train", &json!({ "agent_id": "robot-3", "task_name": "CartPole-heavy", "mode": "adapter", "base_training": base_id, "num_simulations": 40, "lora_rank": 2, "use_phantom_paths": false }))
        .await;
    assert_eq!(st, 202, "{tr}");
    assert_eq!(tr["base_training"], base_id.as_str());
    let job = s.wait_job(tr["training_id"].as_str().unwrap(), 120).await;
    assert_eq!(job["status"], "complete", "{job}");
    // Its world model is the base's, fine-tuned on the condition's experience.
    let (_, base_job) = s.get(&format!("/jobs/{base_id}")).await;
    let base_model = base_job["result"]["world_model"]["checkpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("no checkpoint recorded: {base_job}"));
    let wm = &job["result"]["world_model"];
    assert_eq!(wm["fine_tuned"], true, "{wm}");
    let prior = std::path::PathBuf::from(wm["prior"].as_str().unwrap());
    assert!(
        prior.ends_with(std::path::Path::new("CartPole-v1").join(base_model)),
        "{wm}"
    );
    assert_ne!(wm["checkpoint"], base_model, "{wm}");
    for (base, code) in [
        (ad_id.as_str(), "unknown_base"),
        ("train_nope", "unknown_base"),
    ] {
        let (st, b) = s
            .post("/train", &json!({ "agent_id": "robot-3", "task_name": "CartPole-heavy", "mode": "adapter", "base_training": base }))
            .await;
        assert_eq!((st, b["error"]["code"].as_str()), (404, Some(code)), "{b}");
    }
    // Same observation width, a box action space: the CartPole base does not fit.
    let boxed = json!({
        "name": "CartPole-boxed",
        "observation_space": cartpole["spec"]["observation_space"],
        "action_space": { "type": "box", "low": [-1.0], "high": [1.0] },
    });
    assert_eq!(s.post("/tasks", &boxed).await.0, 201);
    let mut batch = cartpole_batch("robot-3", 60, 12);
    batch.task_name = "CartPole-boxed".into();
    for t in &mut batch.transitions {
        t.action = Action::Continuous(vec![0.5]);
    }
    let (st, b) = s
        .post("/experience", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s
        .post("/train", &json!({ "agent_id": "robot-3", "task_name": "CartPole-boxed", "mode": "adapter", "base_training": base_id }))
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (409, Some("base_mismatch")),
        "{b}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queue_boundedly_and_cancel() {
    let s = TestServer::start(SLOW_PLANNER).await;
    upload_cartpole(&s, "a", 60).await;
    // A long simulation holds the one compute slot.
    let long = json!({ "agent_id": "a", "task_description": "CartPole-v1", "num_trajectories": 32, "horizon": 1000 });
    let (st, first) = s.post("/simulate", &long).await;
    assert_eq!(st, 202, "{first}");
    let first = first["simulation_id"].as_str().unwrap().to_owned();
    // Capacity is 1 running + 2 queued: the fourth is refused with 429.
    let mut queued = vec![];
    for _ in 0..2 {
        let (st, b) = s.post("/simulate", &long).await;
        assert_eq!(st, 202, "{b}");
        queued.push(b["simulation_id"].as_str().unwrap().to_owned());
    }
    let r = s
        .http
        .post(s.url("/simulate"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "queue_full");
    let (_, st) = s.get("/status").await;
    assert_eq!(
        st["queue_depth"].as_u64().unwrap() + st["running_jobs"].as_u64().unwrap(),
        3
    );

    // Cancel a queued one and the running one.
    let (st, b) = s
        .post(&format!("/jobs/{}/cancel", queued[0]), &json!({}))
        .await;
    assert_eq!(st, 202, "{b}");
    // Wait until the first one computes, then cancel it.
    for _ in 0..400 {
        if s.get(&format!("/jobs/{first}")).await.1["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (st, _) = s.post(&format!("/jobs/{first}/cancel"), &json!({})).await;
    assert_eq!(st, 202);
    let job = s.wait_job(&first, 60).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(
        job["events"].as_array().unwrap().last().unwrap()["event"],
        "cancelled"
    );
    let job = s.wait_job(&queued[0], 60).await;
    assert_eq!(job["status"], "cancelled");
    s.post(&format!("/jobs/{}/cancel", queued[1]), &json!({}))
        .await;
    let job = s.wait_job(&queued[1], 60).await;
    // Cancelling an ended job is a conflict.
    let (st, b) = s
        .post(&format!("/jobs/{}/cancel", queued[1]), &json!({}))
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (409, Some("job_finished")),
        "{job}"
    );
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("plasma_jobs_rejected_total{kind=\"simulation\"} 1"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    let s = TestServer::start("").await;
    let clients = 48;
    let mut tasks = vec![];
    for i in 0..clients {
        let http = s.http.clone();
        let base = s.base.clone();
        tasks.push(tokio::spawn(async move {
            let batch = cartpole_batch(&format!("agent-{i}"), 10, i as u64);
            let r = http
                .post(format!("{base}/experience"))
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            for path in ["/health", "/status", "/tasks", "/metrics"] {
                let r = http.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, task) = s.get("/tasks/CartPole-v1").await;
    assert_eq!(task["transitions"], 10 * clients);
    assert_eq!(task["chunks"], clients);
    assert_eq!(task["agents"].as_array().unwrap().len(), clients as usize);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_tasks_take_experience() {
    let s = TestServer::start("").await;
    let spec = json!({
        "name": "Thermostat-v0",
        "observation_space": { "type": "box", "low": [-50.0], "high": [50.0] },
        "action_space": { "type": "box", "low": [-1.0], "high": [1.0] },
    });
    let (st, b) = s.post("/tasks", &spec).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(s.post("/tasks", &spec).await.0, 201, "idempotent");
    let mut other = spec.clone();
    other["action_space"]["high"] = json!([2.0]);
    assert_eq!(
        s.post("/tasks", &other).await.1["error"]["code"],
        "task_exists"
    );
    let bad = json!({ "name": "X", "observation_space": { "type": "box", "low": [1.0], "high": [0.0] }, "action_space": { "type": "discrete", "n": 2 } });
    assert_eq!(s.post("/tasks", &bad).await.0, 422);
    let batch = json!({ "agent_id": "t1", "task_name": "Thermostat-v0", "transitions": [
        { "obs": [20.0], "action": [0.5], "reward": -1.0, "next_obs": [20.5], "terminated": false, "truncated": false }
    ]});
    let (st, b) = s.post("/experience", &batch).await;
    assert_eq!(st, 201, "{b}");
    let (_, tasks) = s.get("/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    s.stop().await;
}

/// The Python prototype's client: its exact payloads (defaults spelled out as it sends
/// them, no token, no `mode`), its response fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_prototype_payloads_work_as_they_are() {
    let s = TestServer::start("").await;
    upload_cartpole(&s, "agent_001", 100).await;
    let (st, sim) = s
        .post(
            "/simulate",
            &json!({ "agent_id": "agent_001", "task_description": "CartPole-v1", "num_trajectories": 10, "adversarial_audit": true }),
        )
        .await;
    assert_eq!(st, 202, "{sim}");
    for field in ["simulation_id", "status", "message"] {
        assert!(sim[field].is_string(), "{field}: {sim}");
    }
    let id = sim["simulation_id"].as_str().unwrap();
    s.wait_job(id, 120).await;
    let (_, view) = s.get(&format!("/simulate/{id}")).await;
    assert_eq!(view["status"], "complete", "{view}");

    let (st, tr) = s
        .post(
            "/train",
            &json!({ "agent_id": "agent_001", "task_name": "CartPole-v1", "num_simulations": 1000, "lora_rank": 8, "learning_rate": 0.0001, "use_phantom_paths": true }),
        )
        .await;
    assert_eq!(st, 202, "{tr}");
    assert!(tr["status"].is_string());
    let id = tr["training_id"].as_str().unwrap().to_owned();
    assert_eq!(s.wait_job(&id, 120).await["status"], "complete");
    let (_, hist) = s.get("/train/history/agent_001").await;
    assert_eq!(hist["history"].as_array().unwrap().len(), 1);

    let (st, c) = s
        .post(
            "/instruction-packet/compile",
            &json!({ "agent_id": "agent_001", "trained_lora_path": id, "target_device": "edge" }),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["status"], "compiled");
    assert_eq!(c["agent_id"], "agent_001");
    assert!(c["packet_size"].as_u64().unwrap() > 0);
    assert!(c["message"].is_string());
    let r = s
        .http
        .get(s.url("/instruction-packet/download/agent_001"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().len() as u64,
        c["packet_size"].as_u64().unwrap()
    );
    s.stop().await;
}
