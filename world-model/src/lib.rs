//! Plasma's world models: the contract, the probabilistic-ensemble family, training,
//! phantom paths (batched imagined rollouts) and the planners that steer them.
//!
//! - [`model`]: the contract every family implements ([`WorldModel`]).
//! - [`config`], [`registry`]: a JSON config names a family (`"ensemble"`) and its
//!   parameters; the registry builds or loads the model.
//! - [`ensemble`]: `E` probabilistic MLPs, stacked weights, one batched product per layer.
//! - [`train`] (via [`WorldModel::fit`]): Gaussian NLL + termination cross-entropy, Adam,
//!   bootstrapped minibatches, held-out early stopping, fine-tuning from a checkpoint.
//! - [`rollout`]: phantom paths driven by action sequences, a policy or a planner.
//! - [`termination`]: a task's declared termination rule (from its spec) ends phantom
//!   paths in place of the learned termination head, as PETS / mbrl-lib do.
//! - [`planner`]: CEM and MPPI over action sequences, batched across start states.
//! - [`checkpoint`]: save / load a model directory.
//! - [`mpc`]: model-predictive control in the real environments (plasma-envs).
//! - [`audit`]: the Judicial Auditor — calibrated checks of phantom paths and packets.
//! - [`policy`]: small edge policies (burn MLPs laid out as the packet runtime computes
//!   them): supervised fitting, LoRA adapters, export to f32 networks and signed packets.
//!
//! Compute runs on burn's `flex` CPU backend by default, or on `wgpu` with the crate's
//! `wgpu` feature; the device is chosen at run time ([`device::parse_device`]).

pub mod action;
pub mod audit;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod distill;
pub mod ensemble;
pub mod error;
pub mod model;
pub mod mpc;
pub mod normalize;
pub mod planner;
pub mod policy;
pub mod recipe;
pub mod registry;
pub mod rollout;
pub mod screen;
pub mod termination;
mod train;
pub mod value;

pub use action::ActionCodec;
pub use config::{EnsembleConfig, NormalizerUpdate, TrainConfig, WorldModelConfig};
pub use data::Dataset;
pub use device::parse_device;
pub use distill::{DistillConfig, DistillProgress, DistillReport, distill};
pub use ensemble::Ensemble;
pub use error::{Result, WorldModelError};
pub use model::{
    ActionBatch, Decoded, LossReport, ModelState, Noise, StepOptions, TrainReport, WorldModel,
};
pub use planner::{Cem, CemConfig, Mppi, MppiConfig, Plan, Planner, PlannerPolicy, SearchConfig};
pub use policy::{
    BuiltPacket, FitConfig, FitReport, Labels, LoraConfig, LoraSpec, PolicyConfig, PolicyModel,
};
pub use recipe::{RecipeConfig, RecipeEvent, RecipeReport, ValueRefitConfig, distil_policy};
pub use registry::Registry;
pub use rollout::{ActionSequences, Driver, HostTrajectory, Policy, RolloutOptions, Trajectory};
pub use termination::DeclaredTermination;
pub use value::{TerminalValue, ValueConfig, ValueReport};

/// Re-export of the burn crate this crate is built on, so that users name the same types.
pub use burn;
