//! Runnable end-to-end recipes for Plasma. Each binary in `src/bin` is one recipe; this
//! library holds what they share: a local plasma-server and random experience.

use std::path::Path;

use anyhow::{Context, Result};
use plasma_client::{ClientConfig, PlasmaClient};
use plasma_server::RunningServer;
use plasma_server::config::Config;

/// The allocator of every recipe, as of the `plasma-server` binary (each recipe runs a
/// server in-process; why mimalloc: ARCHITECTURE.md, plasma-server's decisions).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Small compute settings: a training run in seconds on two cores, weak policies
/// (`config/quick.toml`, which `plasma-server --config` also reads).
pub const QUICK: &str = include_str!("../../../config/quick.toml");

/// Starts plasma-server with the embedded defaults (or [`QUICK`] ones) on a free loopback
/// port, storing under `data_dir`; returns it with a client of it.
pub async fn local_server(data_dir: &Path, quick: bool) -> Result<(RunningServer, PlasmaClient)> {
    local_server_with(data_dir, quick, None).await
}

/// [`local_server`] with the settings of a configuration file (as `plasma-server --config`
/// reads it) layered over the defaults or the quick ones.
pub async fn local_server_with(
    data_dir: &Path,
    quick: bool,
    config_file: Option<&Path>,
) -> Result<(RunningServer, PlasmaClient)> {
    let file = match config_file {
        Some(path) => Some((
            path.display().to_string(),
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        None => None,
    };
    let mut layers: Vec<(&str, &str)> = Vec::new();
    if quick {
        layers.push(("quick", QUICK));
    }
    if let Some((name, text)) = &file {
        layers.push((name, text));
    }
    let mut config = Config::from_layers(&layers)?;
    config.server.port = 0;
    config.storage.data_dir = data_dir.to_path_buf();
    config.log.filter = "warn".into();
    let server = plasma_server::start(config)
        .await
        .context("starting plasma-server")?;
    let client = PlasmaClient::new(ClientConfig::new(format!("http://{}", server.local_addr())))?;
    Ok((server, client))
}

/// A client of an external plasma-server at `url`, with a bearer `token` where it needs
/// one (the recipes' `--server URL --token T`).
pub fn external_client(url: &str, token: Option<String>) -> Result<PlasmaClient> {
    let mut config = ClientConfig::new(url.to_owned());
    config.token = token;
    Ok(PlasmaClient::new(config)?)
}

/// Random-action experience: plasma-client's, re-exported for the recipes.
pub use plasma_client::episodes::random_experience;

/// Mean return of `policy` over `episodes` real CartPole-v1 episodes under `physics`
/// (seeds from 42,000, the recipes' evaluation seeds).
pub fn mean_return(
    policy: &plasma_client::EdgePolicy,
    physics: &plasma_envs::Physics,
    episodes: usize,
) -> Result<f64> {
    let mut actor = policy.actor();
    let returns = plasma_client::episodes::run_episodes(
        "CartPole-v1",
        physics,
        episodes,
        42_000,
        |o| {
            actor
                .act(o)
                .map(|a| a.to_owned())
                .map_err(|e| plasma_client::ClientError::Invalid(e.to_string()))
        },
        |_| {},
    )?;
    Ok(returns.iter().sum::<f64>() / returns.len().max(1) as f64)
}
