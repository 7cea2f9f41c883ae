//! plasma-client with several servers: a server that cannot be reached is passed over at
//! once, the client stays on the one that answered, and moves on again when that one goes
//! away — for single calls, the event stream and an Agent's whole loop.

use std::sync::Arc;
use std::time::Duration;

use plasma_client::protocol::{ExperienceBatch, PolicyKind};
use plasma_client::{
    Agent, AgentConfig, ClientConfig, PacketCache, PlasmaClient, RetryPolicy, Verifier,
};
use plasma_e2e::{cartpole_experience, start_server};
use plasma_envs::Physics;

/// The URL of a loopback port nothing listens on (bound, then released).
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn client_of(urls: &[String]) -> PlasmaClient {
    let mut config = ClientConfig::from_list(&urls.join(","));
    config.retry = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    PlasmaClient::new(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moves_to_the_next_server_when_one_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_server(&dir.path().join("a")).await;
    let b = start_server(&dir.path().join("b")).await;
    let (url_a, url_b) = (
        format!("http://{}", a.local_addr()),
        format!("http://{}", b.local_addr()),
    );
    let dead = unreachable_url();
    let client = client_of(&[dead.clone(), url_a.clone(), url_b.clone()]);
    assert_eq!(
        client.base_urls().collect::<Vec<_>>(),
        [&dead, &url_a, &url_b]
    );

    // The first server is down: the call goes to the second at once, and stays there.
    client.health().await.unwrap();
    assert_eq!(client.base_url(), url_a);

    // An agent on that client runs its whole loop (upload, train, compile, download,
    // verify) through the server that answered.
    let key = client.signing_key().await.unwrap();
    let cache =
        Arc::new(PacketCache::open(dir.path().join("cache"), Verifier::pinned(key)).unwrap());
    let mut config = AgentConfig::new("robot-1", "CartPole-v1");
    config.force = true;
    config.num_simulations = 64;
    config.job_timeout = Duration::from_secs(120);
    let mut agent = Agent::new(client.clone(), config, cache).unwrap();
    for t in cartpole_experience(200, &Physics::new(), 1) {
        agent.observe(t);
    }
    let evolved = agent.evolve().await.unwrap();
    assert_eq!(evolved.kind, PolicyKind::Base);
    assert_eq!(
        a.local_addr().to_string(),
        client.base_url().trim_start_matches("http://")
    );

    // The server in use goes away: calls and the event stream carry on against the next.
    a.shutdown().await;
    let batch = ExperienceBatch {
        agent_id: "robot-2".into(),
        task_name: "CartPole-v1".into(),
        transitions: cartpole_experience(50, &Physics::new(), 2),
    };
    let accepted = client.upload_experience(&batch).await.unwrap();
    assert_eq!(accepted.accepted, 50);
    assert_eq!(client.base_url(), url_b);
    let events = client.events("robot-2").await.unwrap();
    events.close().await;

    // Every server down: the error names the connection failure, after the retries.
    b.shutdown().await;
    let err = client.health().await.unwrap_err();
    assert!(
        matches!(err, plasma_client::ClientError::Connect { .. }),
        "{err}"
    );
}
