//! The whole loop over real sockets: an edge agent uploads, gets a base packet, acts on it
//! offline, adapts to changed physics with a hot-swapped LoRA adapter, keeps acting from
//! its cache with the server gone, and refuses tampered packets.

use std::sync::Arc;
use std::time::Duration;

use plasma_client::protocol::{DeploymentChange, JobStatus, PolicyKind, TaskSpec};
use plasma_client::{Agent, AgentConfig, ClientError, EdgePolicy, PacketCache, Verifier};
use plasma_e2e::{cartpole_experience, client_of, start_server, start_server_with};
use plasma_envs::Physics;

fn agent_config() -> AgentConfig {
    let mut c = AgentConfig::new("robot-1", "CartPole-v1");
    // Tiny test policies may be rejected by the auditor; deploying them is the point here.
    c.force = true;
    c.num_simulations = 64;
    c.job_timeout = Duration::from_secs(120);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_learns_deploys_adapts_and_acts_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("server")).await;
    let client = client_of(&server);
    let key = client.signing_key().await.unwrap();
    let cache =
        Arc::new(PacketCache::open(dir.path().join("cache"), Verifier::pinned(key)).unwrap());
    let mut agent = Agent::new(client.clone(), agent_config(), cache.clone()).unwrap();
    assert!(!agent.has_policy());
    assert!(matches!(agent.act(&[0.0; 4]), Err(ClientError::NoPolicy)));

    // Real experience in, a base packet out, hot-loaded.
    let mut events = client.events("robot-1").await.unwrap();
    for t in cartpole_experience(200, &Physics::new(), 1) {
        agent.observe(t);
    }
    let base = agent.evolve().await.unwrap();
    assert_eq!(base.kind, PolicyKind::Base);
    assert_eq!(base.uploaded, 200);
    assert_eq!(agent.buffered(), 0);
    assert!(base.packet_size > 0 && base.packet_size < 32 * 1024);
    let loaded = agent.loaded().unwrap();
    assert_eq!(loaded.base.to_hex(), base.packet_id);
    assert!(loaded.adapter.is_none());
    assert!(
        agent
            .act(&[0.01, 0.0, -0.02, 0.0])
            .unwrap()
            .as_discrete()
            .is_some()
    );
    // The training's events arrived over the WebSocket, in order, through completion.
    let mut seqs = vec![];
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next_event())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the socket stays open");
        if ev.job_id == base.training.id {
            seqs.push(ev.seq);
            if ev.status == JobStatus::Complete {
                break;
            }
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        seqs.len() >= 3,
        "queued, started, progress…, completed: {seqs:?}"
    );
    events.close().await;

    // Physics change: a condition task with the same spaces, an adapter on the running base.
    let mut spec: TaskSpec = client.task("CartPole-v1").await.unwrap().spec;
    spec.name = "CartPole-heavy".into();
    client.register_task(&spec).await.unwrap();
    agent.set_task("CartPole-heavy", Some(base.training.id.clone()));
    let mut heavy = Physics::new();
    heavy.set("gravity", 30.0);
    for t in cartpole_experience(150, &heavy, 2) {
        agent.observe(t);
    }
    agent.learn().unwrap();
    assert!(matches!(agent.learn(), Err(ClientError::Busy)));
    // act never waits for learning.
    for _ in 0..1000 {
        agent.act(&[0.0, 0.1, 0.0, -0.1]).unwrap();
    }
    let adapter = agent.wait_learned().await.unwrap().unwrap();
    assert_eq!(adapter.kind, PolicyKind::Adapter);
    assert!(
        adapter.packet_size <= 4096,
        "adapter packet {} bytes",
        adapter.packet_size
    );
    let loaded = agent.loaded().unwrap();
    assert_eq!(
        loaded.base.to_hex(),
        base.packet_id,
        "same base, no re-download"
    );
    assert_eq!(
        loaded.adapter.map(|d| d.to_hex()),
        Some(adapter.packet_id.clone())
    );
    agent.act(&[0.0; 4]).unwrap();

    // The agent reported each install: the server shows what it runs.
    let deployment = |agents: Vec<plasma_client::protocol::AgentSummary>| {
        let me = agents
            .into_iter()
            .find(|a| a.agent_id == "robot-1")
            .unwrap();
        me.deployment
            .expect("robot-1 reported its deployment")
            .report
    };
    let reported = deployment(client.agents().await.unwrap());
    assert_eq!(reported.base, base.packet_id);
    assert_eq!(
        reported.adapter.as_deref(),
        Some(adapter.packet_id.as_str())
    );
    assert_eq!(reported.change, DeploymentChange::Install);

    // Rollback to the base alone (reported too) and forward again via the cache's record.
    assert_eq!(agent.rollback().await.unwrap(), None);
    assert!(agent.loaded().unwrap().adapter.is_none());
    let reported = deployment(client.agents().await.unwrap());
    assert_eq!(
        (reported.adapter, reported.change),
        (None, DeploymentChange::Rollback)
    );

    // The server goes away: a new agent process acts from the cache alone, and learning
    // fails without losing the buffered experience.
    agent
        .policy()
        .unwrap()
        .apply_adapter(&cache.get(&loaded.adapter.unwrap()).unwrap().unwrap().0)
        .unwrap();
    server.shutdown().await;
    drop(agent);
    let mut offline = Agent::new(client.clone(), agent_config(), cache.clone()).unwrap();
    assert_eq!(offline.loaded().unwrap().adapter, loaded.adapter);
    offline.act(&[0.02, 0.0, 0.01, 0.0]).unwrap();
    for t in cartpole_experience(30, &heavy, 3) {
        offline.observe(t);
    }
    let err = offline.evolve().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(offline.buffered(), 30, "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_foreign_packets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("server")).await;
    let client = client_of(&server);
    let key = client.signing_key().await.unwrap();
    let cache =
        Arc::new(PacketCache::open(dir.path().join("cache"), Verifier::pinned(key)).unwrap());
    let mut agent = Agent::new(client.clone(), agent_config(), cache.clone()).unwrap();
    for t in cartpole_experience(120, &Physics::new(), 4) {
        agent.observe(t);
    }
    let base = agent.evolve().await.unwrap();
    let bytes = client
        .download_instruction_packet(&base.packet_id)
        .await
        .unwrap();
    // By agent id: the same latest packet.
    assert_eq!(
        client.download_instruction_packet("robot-1").await.unwrap(),
        bytes
    );

    // Every single flipped byte is refused (sampled across the packet).
    let other_cache = PacketCache::open(dir.path().join("other"), Verifier::pinned(key)).unwrap();
    for i in (0..bytes.len()).step_by((bytes.len() / 64).max(1)) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(
            other_cache.put(&bad).is_err(),
            "byte {i} flipped was accepted"
        );
        assert!(
            EdgePolicy::load_base(
                Arc::new(
                    PacketCache::open(dir.path().join("other"), Verifier::pinned(key)).unwrap()
                ),
                &bad
            )
            .is_err()
        );
    }
    assert!(other_cache.list().unwrap().is_empty());

    // A second server has its own key: its packets are refused by a cache pinned to the first.
    let server2 = start_server(&dir.path().join("server2")).await;
    let client2 = client_of(&server2);
    assert_ne!(client2.signing_key().await.unwrap(), key);
    let mut agent2 = Agent::new(
        client2.clone(),
        agent_config(),
        Arc::new(
            PacketCache::open(
                dir.path().join("cache2"),
                Verifier::pinned(client2.signing_key().await.unwrap()),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    for t in cartpole_experience(120, &Physics::new(), 5) {
        agent2.observe(t);
    }
    let foreign = agent2.evolve().await.unwrap();
    let foreign_bytes = client2
        .download_instruction_packet(&foreign.packet_id)
        .await
        .unwrap();
    assert!(matches!(
        cache.put(&foreign_bytes),
        Err(ClientError::Packet(_))
    ));
    assert!(matches!(
        agent.policy().unwrap().replace_base(&foreign_bytes),
        Err(ClientError::Packet(_))
    ));
    assert_eq!(agent.loaded().unwrap().base.to_hex(), base.packet_id);

    // A packet corrupted on disk: the agent refuses to start from it.
    let path = cache
        .dir()
        .join("packets")
        .join(format!("{}.pkt", base.packet_id));
    let mut on_disk = std::fs::read(&path).unwrap();
    let n = on_disk.len();
    on_disk[n - 1] ^= 0xff;
    std::fs::write(&path, on_disk).unwrap();
    assert!(Agent::new(client.clone(), agent_config(), cache.clone()).is_err());

    // Errors of the server keep their codes.
    match client.task("Nope-v0").await {
        Err(ClientError::Api {
            status: 404, code, ..
        }) => assert_eq!(code, "unknown_task"),
        other => panic!("expected a 404, got {other:?}"),
    }
    server.shutdown().await;
    server2.shutdown().await;
}

/// The client waits as long as the server's `Retry-After` says when it is rate limited,
/// and does not retry a full quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_honours_retry_after_and_stops_at_a_full_quota() {
    use plasma_client::protocol::ExperienceBatch;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_with(
        dir.path(),
        "[limits]\nagent_requests_per_minute = 60\nmax_agent_task_transitions = 500\n",
    )
    .await;
    let client = client_of(&server);
    let experience = cartpole_experience(600, &Physics::new(), 3);
    let batch = |range: std::ops::Range<usize>| ExperienceBatch {
        agent_id: "robot-1".into(),
        task_name: "CartPole-v1".into(),
        transitions: experience[range].to_vec(),
    };
    // A burst of 60 passes; the 61st is refused with Retry-After 1 and, retried after it
    // (the client's own backoff is 20–200 ms, too short), succeeds.
    for i in 0..61 {
        client.upload_experience(&batch(i..i + 1)).await.unwrap();
    }
    // 61 stored; 540 more would pass the quota of 500: refused once, not retried.
    match client.upload_experience(&batch(0..540)).await {
        Err(ClientError::Api {
            status: 429, code, ..
        }) => assert_eq!(code, "agent_quota_exceeded"),
        other => panic!("expected the quota's 429, got {other:?}"),
    }
    let metrics = reqwest::get(format!("http://{}/metrics", server.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |reason: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "plasma_experience_refused_total{{reason=\"{reason}\"}} "
                ))
            })
            .map(|n| n.parse::<u64>().unwrap())
            .unwrap_or(0)
    };
    assert!(count("rate_limited") >= 1, "{metrics}");
    assert_eq!(count("agent_quota_exceeded"), 1, "{metrics}");
    assert_eq!(client.task("CartPole-v1").await.unwrap().transitions, 61);
    server.shutdown().await;
}
