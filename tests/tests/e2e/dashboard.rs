//! The dashboard in a real browser: a real plasma-server (tokens on, small compute) with
//! real CartPole experience uploaded in several chunks, then `tests/dashboard/dashboard.mjs`
//! drives Debian's headless Chromium through every view while a training job runs (see
//! that script for what it checks). Needs Node.js, `npm ci` in tests/dashboard and
//! /usr/bin/chromium (or `$CHROMIUM`): `scripts/browser-deps` installs them, and the README's
//! test command runs it first. Without them this test fails; it never skips.
//!
//! Screenshots of each view at 1366×768 and 390×844 are written to
//! `target/dashboard-screenshots/` for a person to look at.

use std::path::PathBuf;
use std::process::Stdio;

use plasma_client::protocol::ExperienceBatch;
use plasma_e2e::{cartpole_experience, start_server_with};
use plasma_envs::Physics;

const ADMIN: &str = "dashboard-admin-secret";
const AGENT_TOKEN: &str = "dashboard-agent-secret";
const AGENT: &str = "robot-1";
const TASK: &str = "CartPole-v1";

/// Tokens on, and a training job long enough (a few seconds) for its progress to be seen
/// moving on the page.
fn config() -> String {
    format!(
        r#"
[[auth.tokens]]
token = "{ADMIN}"
role = "admin"

[[auth.tokens]]
token = "{AGENT_TOKEN}"
role = "agent"
agents = ["{AGENT}"]

[compute]
phantom_horizon = 30

[compute.world_model_train]
max_epochs = 40

[compute.distill]
iterations = 4
"#
    )
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_view_and_a_live_job_in_chromium() {
    let root = repo_root();
    let script = root.join("tests/dashboard/dashboard.mjs");
    assert!(
        root.join("tests/dashboard/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed in tests/dashboard: run `bash scripts/browser-deps`"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: run `bash scripts/browser-deps` (Debian's chromium)"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = start_server_with(&dir.path().join("server"), &config()).await;
    let url = format!("http://{}", server.local_addr());
    let http = reqwest::Client::new();
    // Three uploads, so the overview's experience plot has three points.
    let experience = cartpole_experience(600, &Physics::new(), 3);
    for chunk in experience.chunks(200) {
        let batch = ExperienceBatch {
            agent_id: AGENT.into(),
            task_name: TASK.into(),
            transitions: chunk.to_vec(),
        };
        let res = http
            .post(format!("{url}/experience"))
            .bearer_auth(AGENT_TOKEN)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "upload: {}", res.status());
    }

    let shots = root.join("target/dashboard-screenshots");
    let command = {
        let mut c = std::process::Command::new("node");
        c.arg(&script)
            .current_dir(&root)
            .env("PLASMA_URL", &url)
            .env("PLASMA_ADMIN_TOKEN", ADMIN)
            .env("PLASMA_AGENT_TOKEN", AGENT_TOKEN)
            .env("PLASMA_AGENT", AGENT)
            .env("PLASMA_TASK", TASK)
            .env("PLASMA_SHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    // The server runs on this test's runtime while node drives the browser.
    let output = tokio::task::spawn_blocking(move || {
        let mut command = command;
        command.output()
    })
    .await
    .unwrap()
    .expect("node runs (Node.js is needed for the browser test)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for view in [
        "sign-in",
        "overview",
        "jobs",
        "training-run",
        "simulation",
        "packets",
    ] {
        for size in ["1366x768", "390x844"] {
            let shot = shots.join(format!("{view}-{size}.png"));
            let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "screenshot {} was written", shot.display());
        }
    }
    server.shutdown().await;
}
