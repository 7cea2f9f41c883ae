//! Configuration: `config/default.toml` (compiled in), an optional file, environment
//! variables, then command-line flags (applied by the binary through [`Overrides`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use plasma_world_model::audit::AgentCheckConfig;
use plasma_world_model::{
    Cem, CemConfig, DistillConfig, EnsembleConfig, PolicyConfig, RecipeConfig, TrainConfig,
    ValueConfig,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The default configuration, the same text as `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid TOML for this configuration.
    #[error("invalid configuration {what}: {message}")]
    Parse {
        /// Which document.
        what: String,
        /// The parser's complaint.
        message: String,
    },
    /// An environment variable holds an unusable value.
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// Why it was refused.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listening socket and HTTP limits.
    pub server: ServerConfig,
    /// Where data lives.
    pub storage: StorageConfig,
    /// Per-agent limits.
    pub limits: LimitsConfig,
    /// Bearer tokens.
    pub auth: AuthConfig,
    /// The job queue.
    pub jobs: JobsConfig,
    /// What jobs compute and how.
    pub compute: ComputeConfig,
    /// Packet compilation.
    pub packets: PacketsConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Listening socket and HTTP limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0: any free port).
    pub port: u16,
    /// Largest request body in bytes (larger: 413).
    pub body_limit_bytes: usize,
    /// Per-request time limit in seconds (408 past it).
    pub request_timeout_secs: u64,
    /// CORS origins; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// Seconds shutdown waits for running jobs.
    pub shutdown_grace_secs: u64,
}

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Most transitions loaded for one task (the newest are kept).
    pub max_task_transitions: usize,
}

/// Per-agent limits on what one agent may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Transitions one agent may store in one task (0: no limit).
    pub max_agent_task_transitions: u64,
    /// Experience uploads and simulation requests per agent per minute (0: no limit).
    pub agent_requests_per_minute: u32,
}

/// A role a token grants.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Upload experience, simulate, download packets, read.
    Agent,
    /// Everything.
    Admin,
}

/// One bearer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// What it may do.
    pub role: Role,
    /// The agents an agent token speaks for: uploads, simulations and training requests
    /// naming another `agent_id` are refused (403). Empty: any agent (tokens configured
    /// before identities; a warning is logged at start). Admin tokens speak for every agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

/// One entry of `PLASMA_AGENT_TOKENS` / `PLASMA_ADMIN_TOKENS`: `TOKEN`, or
/// `AGENT[+AGENT…]@TOKEN` for a token bound to those agents (agent ids cannot contain `@`
/// or `+`, so the split is unambiguous when the left side is a list of valid ids).
fn parse_token_entry(entry: &str, role: Role) -> TokenConfig {
    if let Some((agents, token)) = entry.split_once('@') {
        let agents: Vec<String> = agents.split('+').map(str::to_owned).collect();
        if !token.is_empty()
            && agents
                .iter()
                .all(|a| plasma_protocol::validate_identifier(a).is_ok())
        {
            return TokenConfig {
                token: token.to_owned(),
                role,
                agents,
            };
        }
    }
    TokenConfig {
        token: entry.to_owned(),
        role,
        agents: vec![],
    }
}

/// Bearer tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The tokens; none on a loopback bind means open access.
    pub tokens: Vec<TokenConfig>,
}

/// The job queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs computing at once.
    pub max_concurrent: usize,
    /// Jobs waiting for a slot; beyond, submissions answer 429.
    pub queue_capacity: usize,
    /// Events kept per job.
    pub max_events_per_job: usize,
    /// Times a job may start before a crash during it fails it (`attempts_exhausted`)
    /// instead of running it again at the next start.
    pub max_attempts: u32,
}

/// What jobs compute and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    /// burn device name (`cpu`, `wgpu`).
    pub device: String,
    /// Fewest transitions a task needs for a job.
    pub min_transitions: usize,
    /// Screening before a fit (`plasma_world_model::screen`): a transition with a value
    /// more than this many widths of its column's central 99% outside it is left out;
    /// `0` keeps everything.
    pub outlier_widths: f32,
    /// When a task's data comes from several agents: which agent's data disagrees with the
    /// rest under the shared model (`plasma_world_model::audit::check_agents`).
    #[serde(default)]
    pub agent_check: AgentCheckConfig,
    /// Leave flagged agents' data out of shared fits (the model is fitted once more).
    pub exclude_flagged_agents: bool,
    /// Steps of the evaluation and audit phantom paths of a trained policy.
    pub phantom_horizon: usize,
    /// Steps of `/simulate`'s phantom paths.
    pub simulate_horizon: usize,
    /// Most paths of one simulation.
    pub max_trajectories: usize,
    /// Default LoRA rank of adapters.
    pub lora_rank: usize,
    /// LoRA alpha of adapters.
    pub lora_alpha: f32,
    /// The world model.
    pub ensemble: EnsembleConfig,
    /// Its training.
    pub world_model_train: TrainConfig,
    /// The planner that steers simulations, and the training jobs' teacher where no
    /// terminal value is learned.
    pub planner: CemConfig,
    /// The training jobs' teacher where a terminal value is learned (short horizon).
    pub value_planner: CemConfig,
    /// Learn a terminal value for the teacher on discrete-action tasks
    /// (`plasma_world_model::recipe`).
    pub use_terminal_value: bool,
    /// How the terminal value is learned.
    pub terminal_value: ValueConfig,
    /// The edge policy's architecture.
    pub policy: PolicyConfig,
    /// Distillation of the planner into the policy (its `fit` is the supervised fit).
    pub distill: DistillConfig,
    /// Refits of the terminal value on the student's own imagined states.
    #[serde(default)]
    pub value_refit: plasma_world_model::ValueRefitConfig,
}

impl ComputeConfig {
    /// The learning recipe these settings describe.
    pub fn recipe(&self) -> RecipeConfig {
        RecipeConfig {
            planner: self.planner.clone(),
            value_planner: self.value_planner.clone(),
            terminal_value: self.use_terminal_value.then(|| self.terminal_value.clone()),
            distill: self.distill.clone(),
            value_refit: self.value_refit.clone(),
        }
    }
}

/// Packet compilation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketsConfig {
    /// Default target device recorded with packets.
    pub target_device: String,
    /// Weight quantization (`int8`).
    pub quantization: String,
    /// zstd level of the packet body.
    pub compression_level: i32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name in files and the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// tracing EnvFilter directives.
    pub filter: String,
}

/// Values from command-line flags, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--host`.
    pub host: Option<IpAddr>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--device`.
    pub device: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// The environment variables the configuration reads (DESIGN.md's names and the
/// prototype's), each with the key it sets and whether its value is parsed (numbers,
/// booleans) or taken as text. `PLASMA_ADMIN_TOKENS` / `PLASMA_AGENT_TOKENS` add tokens
/// (see [`Config::apply_tokens`]).
const ENV_KEYS: &[(&str, &str, EnvValue)] = &[
    ("WORLD_MODEL_SERVER_HOST", "server.host", EnvValue::Text),
    ("WORLD_MODEL_SERVER_PORT", "server.port", EnvValue::Parsed),
    (
        "WORLD_MODEL_CHECKPOINT_PATH",
        "storage.data_dir",
        EnvValue::Text,
    ),
    ("WORLD_MODEL_DEVICE", "compute.device", EnvValue::Text),
    ("LORA_RANK", "compute.lora_rank", EnvValue::Parsed),
    ("LORA_ALPHA", "compute.lora_alpha", EnvValue::Parsed),
    (
        "LEARNING_RATE",
        "compute.distill.fit.learning_rate",
        EnvValue::Parsed,
    ),
    ("TARGET_DEVICE", "packets.target_device", EnvValue::Text),
    ("QUANTIZATION", "packets.quantization", EnvValue::Lowercase),
    (
        "COMPRESSION_LEVEL",
        "packets.compression_level",
        EnvValue::Parsed,
    ),
    ("PLASMA_LOG_FORMAT", "log.format", EnvValue::Text),
];

/// How an environment variable's text becomes a value.
#[derive(Debug, Clone, Copy)]
enum EnvValue {
    /// As it is (paths, names, addresses).
    Text,
    /// Lower-cased text.
    Lowercase,
    /// A number or boolean.
    Parsed,
}

impl Default for Config {
    fn default() -> Self {
        // The compiled-in default file is checked by a unit test.
        Config::from_layers(&[]).unwrap_or_else(|e| panic!("config/default.toml is invalid: {e}"))
    }
}

impl Config {
    /// The defaults with TOML documents laid over them in order (tables merged key by
    /// key, everything else replaced).
    pub fn from_layers(layers: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Self::extract(Self::figment(layers), &|_: &str| None)
    }

    /// Figment's layers: the default file, then `layers`.
    fn figment(layers: &[(&str, &str)]) -> Figment {
        layers
            .iter()
            .fold(Figment::from(Toml::string(DEFAULT_TOML)), |f, (_, text)| {
                f.merge(Toml::string(text))
            })
    }

    /// The merged configuration; an error names the document or environment variable it
    /// came from.
    fn extract(
        figment: Figment,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        figment.extract().map_err(|e: figment::Error| {
            let key = e.path.join(".");
            for (name, path, _) in ENV_KEYS {
                if *path == key
                    && let Some(value) = env(name)
                {
                    return ConfigError::Env {
                        name: (*name).into(),
                        value,
                        message: e.kind.to_string(),
                    };
                }
            }
            ConfigError::Parse {
                what: e
                    .metadata
                    .as_ref()
                    .map(|m| m.name.to_string())
                    .unwrap_or_else(|| "(merged)".into()),
                message: e.to_string(),
            }
        })
    }

    /// Loads the configuration: defaults, then `file` if given, then the environment as
    /// read by `env`, then `overrides`; validated.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let text;
        let mut layers = vec![];
        if let Some(path) = file {
            text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            layers.push((path.to_str().unwrap_or("config file"), text.as_str()));
        }
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let mut figment = Self::figment(&layers);
        for (name, path, kind) in ENV_KEYS {
            if let Some(v) = get(name) {
                let v = v.trim();
                let value = match kind {
                    EnvValue::Text => figment::value::Value::from(v.to_owned()),
                    EnvValue::Lowercase => figment::value::Value::from(v.to_ascii_lowercase()),
                    EnvValue::Parsed => v.parse().unwrap_or_else(|never| match never {}),
                };
                figment = figment.merge(Serialized::default(path, value));
            }
        }
        let o = overrides;
        let flags: [(&str, Option<figment::value::Value>); 5] = [
            ("server.host", o.host.map(|h| h.to_string().into())),
            ("server.port", o.port.map(Into::into)),
            (
                "storage.data_dir",
                o.data_dir.as_ref().map(|d| d.display().to_string().into()),
            ),
            ("compute.device", o.device.clone().map(Into::into)),
            (
                "log.format",
                o.log_format.map(|f| f.as_str().to_owned().into()),
            ),
        ];
        for (path, value) in flags {
            if let Some(value) = value {
                figment = figment.merge(Serialized::default(path, value));
            }
        }
        let mut config = Self::extract(figment, &get)?;
        config.apply_tokens(&get);
        config.validate()?;
        Ok(config)
    }

    /// Adds the tokens of `PLASMA_ADMIN_TOKENS` and `PLASMA_AGENT_TOKENS` (comma-separated
    /// `TOKEN` or `agent+agent@TOKEN` entries) to those of the files.
    pub fn apply_tokens(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        for (name, role) in [
            ("PLASMA_ADMIN_TOKENS", Role::Admin),
            ("PLASMA_AGENT_TOKENS", Role::Agent),
        ] {
            if let Some(v) = env(name) {
                for entry in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    self.auth.tokens.push(parse_token_entry(entry, role));
                }
            }
        }
    }

    /// Whether requests need no token: a loopback bind with no token configured.
    pub fn open_access(&self) -> bool {
        self.auth.tokens.is_empty() && self.server.host.is_loopback()
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.auth.tokens.is_empty() && !self.server.host.is_loopback() {
            return bad(format!(
                "binding {} (not loopback) requires bearer tokens: set [[auth.tokens]] or \
                 PLASMA_ADMIN_TOKENS / PLASMA_AGENT_TOKENS",
                self.server.host
            ));
        }
        if let Some(t) = self.auth.tokens.iter().find(|t| t.token.len() < 16) {
            return bad(format!(
                "a {:?} token is {} characters long; tokens need at least 16",
                t.role,
                t.token.len()
            ));
        }
        for t in &self.auth.tokens {
            if let Some(bad_id) = t
                .agents
                .iter()
                .find(|a| plasma_protocol::validate_identifier(a).is_err())
            {
                return bad(format!(
                    "a token names agent {bad_id:?}, not a valid agent id"
                ));
            }
            if t.role == Role::Admin && !t.agents.is_empty() {
                return bad(
                    "admin tokens speak for every agent: give agents to agent tokens only".into(),
                );
            }
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes must be at least 1024".into());
        }
        if self.server.request_timeout_secs == 0 {
            return bad("server.request_timeout_secs must be positive".into());
        }
        if self.jobs.max_concurrent == 0 {
            return bad("jobs.max_concurrent must be positive".into());
        }
        if self.jobs.max_events_per_job < 4 {
            return bad("jobs.max_events_per_job must be at least 4".into());
        }
        let c = &self.compute;
        if c.max_trajectories == 0 {
            return bad("compute.max_trajectories must be positive".into());
        }
        let d = &c.distill;
        if c.phantom_horizon == 0 || c.simulate_horizon == 0 {
            return bad("compute.phantom_horizon and simulate_horizon must be positive".into());
        }
        if !(c.outlier_widths.is_finite() && c.outlier_widths >= 0.0) {
            return bad("compute.outlier_widths must be finite and at least 0".into());
        }
        if self.jobs.max_attempts == 0 {
            return bad("jobs.max_attempts must be at least 1".into());
        }
        if c.min_transitions < 2 {
            return bad("compute.min_transitions must be at least 2".into());
        }
        if c.lora_rank == 0 || c.lora_rank > plasma_packets::limits::MAX_RANK {
            return bad(format!(
                "compute.lora_rank must be 1..={}",
                plasma_packets::limits::MAX_RANK
            ));
        }
        if !(c.lora_alpha.is_finite() && c.lora_alpha > 0.0) {
            return bad("compute.lora_alpha must be positive".into());
        }
        if !(d.fit.learning_rate.is_finite() && d.fit.learning_rate > 0.0) {
            return bad("compute.distill.fit.learning_rate must be positive".into());
        }
        c.ensemble
            .validate()
            .and_then(|_| c.world_model_train.validate())
            .and_then(|_| {
                if c.use_terminal_value {
                    c.terminal_value.validate()
                } else {
                    Ok(())
                }
            })
            .and_then(|_| c.distill.validate())
            // The planners refuse their settings when built: build them once here, so that
            // a bad file fails at start, not in every job.
            .and_then(|_| Cem::new(c.planner.clone()).map(drop))
            .and_then(|_| Cem::new(c.value_planner.clone()).map(drop))
            .map_err(|e| ConfigError::Invalid(format!("compute: {e}")))?;
        plasma_world_model::parse_device(&c.device)
            .map_err(|e| ConfigError::Invalid(format!("compute.device: {e}")))?;
        if self.packets.quantization != "int8" {
            return bad(format!(
                "packets.quantization {:?}: only \"int8\" is implemented",
                self.packets.quantization
            ));
        }
        if !(1..=22).contains(&self.packets.compression_level) {
            return bad("packets.compression_level must be 1..=22".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses_and_validates() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.open_access());
        assert_eq!(c.server.port, 8000);
        assert_eq!(c.compute.ensemble.hidden, vec![128, 128, 128]);
    }

    /// A planner the jobs could not build is refused when the configuration loads, and
    /// the value's settings count only while it is used.
    #[test]
    fn bad_planners_and_values_fail_at_load() {
        for bad in [
            "[compute.value_planner]\nelites = 40",
            "[compute.value_planner]\nparticles = 0",
            "[compute.planner]\nhorizon = 0",
            "[compute.terminal_value]\ndiscount = 1.5",
        ] {
            let c = Config::from_layers(&[("bad", bad)]).unwrap();
            let err = c.validate().unwrap_err();
            assert!(err.to_string().contains("compute"), "{bad}: {err}");
        }
        let unused =
            "[compute]\nuse_terminal_value = false\n[compute.terminal_value]\ndiscount = 1.5";
        Config::from_layers(&[("unused", unused)])
            .unwrap()
            .validate()
            .unwrap();
    }

    /// The server's training jobs learn with the recipe the examples use: the default file
    /// holds `RecipeConfig::default()` and the default policy architecture.
    #[test]
    fn default_file_holds_the_shared_recipe() {
        let c = Config::default();
        assert_eq!(
            c.compute.recipe(),
            plasma_world_model::RecipeConfig::default()
        );
        assert_eq!(c.compute.policy, PolicyConfig::default());
    }

    #[test]
    fn env_and_overrides_win_in_order() {
        let env = |name: &str| match name {
            "WORLD_MODEL_SERVER_PORT" => Some("9001".to_owned()),
            "LORA_RANK" => Some("4".to_owned()),
            "LEARNING_RATE" => Some("0.01".to_owned()),
            "COMPRESSION_LEVEL" => Some("3".to_owned()),
            "WORLD_MODEL_CHECKPOINT_PATH" => Some("/tmp/x".to_owned()),
            _ => None,
        };
        let o = Overrides {
            port: Some(9002),
            ..Overrides::default()
        };
        let c = Config::load(None, &env, &o).unwrap();
        assert_eq!(c.server.port, 9002);
        assert_eq!(c.compute.lora_rank, 4);
        assert_eq!(c.compute.distill.fit.learning_rate, 0.01);
        assert_eq!(c.packets.compression_level, 3);
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_values_are_refused() {
        let env = |name: &str| (name == "WORLD_MODEL_SERVER_PORT").then(|| "http".to_owned());
        assert!(matches!(
            Config::load(None, &env, &Overrides::default()),
            Err(ConfigError::Env { .. })
        ));
        assert!(Config::from_layers(&[("x", "[server]\nhots = 1")]).is_err());
        let c = Config::from_layers(&[("x", "[server]\nhost = \"0.0.0.0\"")]).unwrap();
        assert!(c.validate().is_err(), "a public bind without tokens");
        let c = Config::from_layers(&[(
            "x",
            "[server]\nhost = \"0.0.0.0\"\n[[auth.tokens]]\ntoken = \"0123456789abcdef\"\nrole = \"admin\"",
        )])
        .unwrap();
        c.validate().unwrap();
        assert!(!c.open_access());
    }
}
