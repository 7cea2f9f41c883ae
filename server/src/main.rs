//! `plasma-server`: parses flags, loads the configuration, serves until SIGINT/SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use plasma_server::config::{Config, LogFormat, Overrides};

/// The process's allocator. The world model allocates and frees large tensors at every
/// imagined step; under glibc's malloc, page faults, `clear_page` and `memset` of fresh
/// tensors took ~15% of a training job's profile. mimalloc reuses them (rollout benchmark
/// 1.2–1.4× faster; a base job 429 → 401 s, within the VM's noise: README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Plasma's REST and WebSocket server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML configuration laid over config/default.toml (env: PLASMA_CONFIG).
    #[arg(long, env = "PLASMA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to bind (overrides WORLD_MODEL_SERVER_HOST).
    #[arg(long)]
    host: Option<IpAddr>,
    /// Port to bind, 0 for any (overrides WORLD_MODEL_SERVER_PORT).
    #[arg(long)]
    port: Option<u16>,
    /// Data directory (overrides WORLD_MODEL_CHECKPOINT_PATH).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Compute device: cpu, or wgpu in a wgpu build (overrides WORLD_MODEL_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// Log format.
    #[arg(long, value_parser = ["human", "json"])]
    log_format: Option<String>,
    /// Print the merged configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Probe `GET /health` of a running server at HOST:PORT and exit 0 if it answers 200
    /// (the container's HEALTHCHECK; needs no curl). Without a value, the port of the
    /// configuration (file, environment, `--port`) on 127.0.0.1.
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "")]
    check_health: Option<String>,
}

/// `GET /health` over a plain TCP connection, with a 3-second limit.
fn check_health(addr: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let target = addr
        .to_socket_addrs()?
        .next()
        .context("address resolves to nothing")?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 200"),
        "unhealthy: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.check_health.as_deref().filter(|a| !a.is_empty()) {
        return check_health(addr);
    }
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        device: args.device,
        log_format: args.log_format.as_deref().map(|f| match f {
            "json" => LogFormat::Json,
            _ => LogFormat::Human,
        }),
    };
    let config = Config::load(
        args.config.as_deref(),
        &|name| std::env::var(name).ok(),
        &overrides,
    )
    .context("configuration")?;
    if args.check_health.is_some() {
        return check_health(&format!("127.0.0.1:{}", config.server.port));
    }
    if args.print_config {
        let mut shown = config.clone();
        for t in &mut shown.auth.tokens {
            t.token = "<redacted>".into();
        }
        print!("{}", toml::to_string_pretty(&shown)?);
        return Ok(());
    }
    plasma_server::init_tracing(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let served: anyhow::Result<()> = runtime.block_on(async {
        let server = plasma_server::start(config).await.context("start")?;
        // One line on stdout for scripts and tests that start the binary on port 0.
        println!("plasma-server listening on http://{}", server.local_addr());
        server.run_until_signal().await;
        Ok(())
    });
    // Job state is persisted by then; do not wait on idle blocking threads.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}
