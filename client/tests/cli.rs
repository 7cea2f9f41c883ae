//! The `plasma-client` binary's offline commands on real packet files: inspect, run over
//! stdin/stdout, eval in a reference environment; tampered packets refused.

use std::io::Write;
use std::process::{Command, Stdio};

use plasma_packets::float::synthetic;
use plasma_packets::{AuditStatus, Packet, PacketContent, PacketSigner, Provenance};

fn packet_files(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let signer = PacketSigner::from_seed(&[11; 32]);
    let policy = synthetic::default_discrete(3, 4, 2);
    let bytes = Packet {
        provenance: Provenance {
            task: "CartPole-v1".into(),
            agent_id: "robot-1".into(),
            training_run: "train_cli".into(),
            created_unix_ms: 1,
            audit: AuditStatus::Approved,
            audit_summary: "approved".into(),
        },
        content: PacketContent::Base(policy.quantize().unwrap()),
    }
    .encode(Some(&signer), 3)
    .unwrap();
    let path = dir.join("base.pkt");
    std::fs::write(&path, bytes).unwrap();
    (path, signer.public_key().to_hex())
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plasma-client"))
}

#[test]
fn inspect_run_and_eval_work_offline_and_refuse_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (packet, key) = packet_files(dir.path());

    let out = cli()
        .arg("inspect")
        .arg(&packet)
        .args(["--key", &key])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "base");
    assert_eq!(report["provenance"]["training_run"], "train_cli");
    assert_eq!(report["signature"], "valid for the given key");
    let other = PacketSigner::from_seed(&[12; 32]).public_key().to_hex();
    let out = cli()
        .arg("inspect")
        .arg(&packet)
        .args(["--key", &other])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["signature"].as_str().unwrap().starts_with("REFUSED"));
    assert!(!out.status.success(), "a refused signature exits non-zero");

    // run: one JSON observation per line in, one JSON action per line out; bad lines get
    // an error line and the server keeps going.
    let mut child = cli()
        .arg("run")
        .arg("--packet")
        .arg(&packet)
        .args(["--key", &key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[0.01, 0.0, -0.02, 0.0]\nnot json\n[1.0]\n[0.0, 0.5, 0.1, -0.3]\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].as_u64().is_some_and(|a| a < 2));
    assert!(lines[1]["error"].is_string());
    assert!(lines[2]["error"].as_str().unwrap().contains("expects 4"));
    assert!(lines[3].as_u64().is_some());

    // eval: real episodes of the reference environment.
    let out = cli()
        .arg("eval")
        .arg("--packet")
        .arg(&packet)
        .args(["--key", &key, "--env", "CartPole-v1", "--episodes", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["episodes"], 3);
    let mean = report["mean_return"].as_f64().unwrap();
    assert!((1.0..=500.0).contains(&mean));
    assert_eq!(report["steps"].as_f64().unwrap(), mean * 3.0);

    // A tampered packet, or the wrong key, is refused before anything runs.
    let mut bytes = std::fs::read(&packet).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    let bad = dir.path().join("bad.pkt");
    std::fs::write(&bad, bytes).unwrap();
    for (file, k) in [(&bad, &key), (&packet, &other)] {
        let out = cli()
            .arg("run")
            .arg("--packet")
            .arg(file)
            .args(["--key", k])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
}

#[test]
fn online_commands_fail_cleanly_without_a_server() {
    // Port 9 (discard) on loopback: nothing listens.
    let out = cli()
        .args(["--server", "http://127.0.0.1:9", "health"])
        .env("PLASMA_TOKEN", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}
