//! What a packet describes: a quantized base policy or a LoRA adapter, plus provenance.
//!
//! These types are the decoded form of a packet's header and body (see `FORMAT.md`).
//! [`BaseBody::validate`] and [`AdapterBody::validate`] check every shape and value, so a
//! body that passed them can be compiled into the runtime without further checks.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_DIM, MAX_LAYERS, MAX_RANK, MAX_STRING_BYTES, MAX_TOTAL_WEIGHTS};

/// Whether a packet holds a whole policy or an adapter for one; also what a training run
/// trains (plasma-protocol calls it `PolicyKind`). `base` / `adapter` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PacketKind {
    /// A complete policy.
    Base,
    /// A LoRA adapter bound to one base policy.
    Adapter,
}

impl PacketKind {
    /// The kind byte of the format.
    pub fn to_byte(self) -> u8 {
        match self {
            PacketKind::Base => 1,
            PacketKind::Adapter => 2,
        }
    }

    /// Parses the kind byte of the format.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(PacketKind::Base),
            2 => Some(PacketKind::Adapter),
            _ => None,
        }
    }

    /// Lower-case name, as used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketKind::Base => "base",
            PacketKind::Adapter => "adapter",
        }
    }
}

/// The auditor's verdict recorded in a packet, so an agent can see what it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuditStatus {
    /// No audit ran (tests, manual builds).
    Unaudited,
    /// The auditor approved the policy.
    Approved,
    /// The auditor rejected the policy and an operator forced deployment.
    ForcedAfterRejection,
}

/// Where a packet came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Task name, e.g. `CartPole-v1`.
    pub task: String,
    /// Agent the packet was built for (empty for shared base policies).
    pub agent_id: String,
    /// Identifier of the training run that produced the weights.
    pub training_run: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The audit verdict.
    pub audit: AuditStatus,
    /// One-line summary of the audit's figures.
    pub audit_summary: String,
}

impl Provenance {
    /// Checks the string limits (each ≤ 1024 bytes; the encoded header must also fit
    /// in 4096 bytes, which `encode` checks).
    pub fn validate(&self) -> Result<(), String> {
        for (name, s) in [
            ("task", &self.task),
            ("agent_id", &self.agent_id),
            ("training_run", &self.training_run),
            ("audit_summary", &self.audit_summary),
        ] {
            if s.len() > MAX_STRING_BYTES {
                return Err(format!(
                    "provenance {name} longer than {MAX_STRING_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// Non-linearity after a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// No non-linearity (output layers).
    Identity,
    /// max(0, x).
    Relu,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// How a continuous policy's raw outputs become actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContinuousMapping {
    /// `a = clamp(y, low, high)`.
    Clamp,
    /// `a = low + (tanh(y) + 1) / 2 · (high − low)`.
    TanhScaled,
}

/// The action space a policy acts in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ActionSpace {
    /// `n` actions; the policy outputs `n` logits and acts by argmax.
    Discrete {
        /// Number of actions.
        n: u32,
    },
    /// A box; the policy outputs one value per dimension.
    Continuous {
        /// Lower bounds.
        low: Vec<f32>,
        /// Upper bounds.
        high: Vec<f32>,
        /// How outputs map into the box.
        mapping: ContinuousMapping,
    },
}

impl ActionSpace {
    /// Number of network outputs this space needs.
    pub fn output_dim(&self) -> usize {
        match self {
            ActionSpace::Discrete { n } => *n as usize,
            ActionSpace::Continuous { low, .. } => low.len(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            ActionSpace::Discrete { n } => {
                if *n == 0 || *n as usize > MAX_DIM {
                    return Err(format!("discrete action count {n} outside 1..={MAX_DIM}"));
                }
            }
            ActionSpace::Continuous { low, high, .. } => {
                if low.is_empty() || low.len() != high.len() || low.len() > MAX_DIM {
                    return Err("continuous bounds must be non-empty and of equal length".into());
                }
                for (l, h) in low.iter().zip(high) {
                    if !l.is_finite() || !h.is_finite() || l > h {
                        return Err(format!("invalid continuous bound [{l}, {h}]"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Observation normalization applied before the first layer: `(obs − mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsNorm {
    /// Per-dimension mean.
    pub mean: Vec<f32>,
    /// Per-dimension standard deviation (> 0).
    pub std: Vec<f32>,
}

impl ObsNorm {
    /// The identity normalization for `dim` inputs.
    pub fn identity(dim: usize) -> Self {
        ObsNorm {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    fn validate(&self, dim: usize) -> Result<(), String> {
        if self.mean.len() != dim || self.std.len() != dim {
            return Err(format!(
                "normalization has {} means and {} stds for {dim} inputs",
                self.mean.len(),
                self.std.len()
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err("non-finite normalization mean".into());
        }
        if self
            .std
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0 || !(1.0 / *s).is_finite())
        {
            return Err("normalization std must be finite, > 0 and have a finite inverse".into());
        }
        Ok(())
    }
}

/// A row-major int8 matrix with one f32 scale per row: `w[r][c] ≈ values[r·cols + c] · scales[r]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantMatrix {
    /// Number of rows (outputs).
    pub rows: u32,
    /// Number of columns (inputs).
    pub cols: u32,
    /// `rows · cols` quantized values in −127..=127.
    pub values: Vec<i8>,
    /// One scale per row, finite and ≥ 0.
    pub scales: Vec<f32>,
}

impl QuantMatrix {
    /// Shape as `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows as usize, self.cols as usize)
    }

    /// Dequantized value at `(r, c)`.
    #[inline]
    pub fn get(&self, r: usize, c: usize) -> f32 {
        f32::from(self.values[r * self.cols as usize + c]) * self.scales[r]
    }

    /// Dequantizes the whole matrix, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let cols = self.cols as usize;
        self.values
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * self.scales[i / cols.max(1)])
            .collect()
    }

    pub(crate) fn validate(&self, what: &str) -> Result<(), String> {
        let (rows, cols) = self.shape();
        if rows == 0 || cols == 0 || rows > MAX_DIM || cols > MAX_DIM {
            return Err(format!("{what}: shape {rows}x{cols} outside 1..={MAX_DIM}"));
        }
        if self.values.len() != rows * cols {
            return Err(format!(
                "{what}: {} values for shape {rows}x{cols}",
                self.values.len()
            ));
        }
        if self.scales.len() != rows {
            return Err(format!(
                "{what}: {} scales for {rows} rows",
                self.scales.len()
            ));
        }
        if self.scales.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(format!("{what}: scales must be finite and ≥ 0"));
        }
        if self.values.contains(&i8::MIN) {
            return Err(format!("{what}: value −128 is outside the symmetric range"));
        }
        Ok(())
    }
}

/// One dense layer of a base policy: `y = act(s ⊙ (W_q x) + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantLayer {
    /// Weights, `out × in`.
    pub weights: QuantMatrix,
    /// Biases, one per output.
    pub bias: Vec<f32>,
    /// Non-linearity after the layer.
    pub activation: Activation,
}

impl QuantLayer {
    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.weights.cols as usize
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weights.rows as usize
    }
}

/// The body of a base packet: a complete quantized policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseBody {
    /// Normalization of raw observations.
    pub obs_norm: ObsNorm,
    /// Layers, first to last.
    pub layers: Vec<QuantLayer>,
    /// The action space the last layer's outputs map into.
    pub action_space: ActionSpace,
}

impl BaseBody {
    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.layers.first().map_or(0, QuantLayer::in_dim)
    }

    /// Number of weights in all layers.
    pub fn weight_count(&self) -> usize {
        self.layers.iter().map(|l| l.weights.values.len()).sum()
    }

    /// Checks every shape and value; a body that passes can be compiled and run.
    pub fn validate(&self) -> Result<(), String> {
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(format!(
                "{} layers, expected 1..={MAX_LAYERS}",
                self.layers.len()
            ));
        }
        let mut total = 0usize;
        let mut width = self.layers[0].in_dim();
        for (i, layer) in self.layers.iter().enumerate() {
            layer.weights.validate(&format!("layer {i}"))?;
            if layer.in_dim() != width {
                return Err(format!(
                    "layer {i} takes {} inputs but the previous layer gives {width}",
                    layer.in_dim()
                ));
            }
            if layer.bias.len() != layer.out_dim() {
                return Err(format!(
                    "layer {i}: {} biases for {} outputs",
                    layer.bias.len(),
                    layer.out_dim()
                ));
            }
            if layer.bias.iter().any(|b| !b.is_finite()) {
                return Err(format!("layer {i}: non-finite bias"));
            }
            total += layer.weights.values.len();
            width = layer.out_dim();
        }
        if total > MAX_TOTAL_WEIGHTS {
            return Err(format!("{total} weights, more than {MAX_TOTAL_WEIGHTS}"));
        }
        self.obs_norm.validate(self.obs_dim())?;
        self.action_space.validate()?;
        if self.action_space.output_dim() != width {
            return Err(format!(
                "the action space needs {} outputs but the last layer gives {width}",
                self.action_space.output_dim()
            ));
        }
        Ok(())
    }
}

/// A low-rank update of one base layer: `ΔW = (alpha / rank) · B · A`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterLayer {
    /// Index of the base layer this adapts.
    pub layer: u32,
    /// `A`, `rank × in`.
    pub a: QuantMatrix,
    /// `B`, `out × rank`.
    pub b: QuantMatrix,
}

/// The body of an adapter packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterBody {
    /// LoRA rank `r`.
    pub rank: u32,
    /// LoRA `alpha`; the update is scaled by `alpha / rank`.
    pub alpha: f32,
    /// Adapted layers, each base layer at most once.
    pub layers: Vec<AdapterLayer>,
}

impl AdapterBody {
    /// The factor `alpha / rank` applied to `B · A`.
    pub fn scaling(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// Checks shapes and values on their own (fit to a base is checked at load).
    pub fn validate(&self) -> Result<(), String> {
        let rank = self.rank as usize;
        if rank == 0 || rank > MAX_RANK {
            return Err(format!("rank {rank} outside 1..={MAX_RANK}"));
        }
        if !self.alpha.is_finite() {
            return Err("non-finite alpha".into());
        }
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(format!(
                "{} adapted layers, expected 1..={MAX_LAYERS}",
                self.layers.len()
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            l.a.validate(&format!("adapter {i} A"))?;
            l.b.validate(&format!("adapter {i} B"))?;
            if l.a.rows as usize != rank || l.b.cols as usize != rank {
                return Err(format!("adapter {i}: A or B does not have rank {rank}"));
            }
            if self.layers[..i].iter().any(|o| o.layer == l.layer) {
                return Err(format!("base layer {} adapted twice", l.layer));
            }
        }
        Ok(())
    }

    /// Checks that every adapted layer exists in `base` with matching widths.
    pub fn check_fits(&self, base: &BaseBody) -> Result<(), String> {
        for l in &self.layers {
            let Some(target) = base.layers.get(l.layer as usize) else {
                return Err(format!(
                    "adapts layer {} but the base has {}",
                    l.layer,
                    base.layers.len()
                ));
            };
            if l.a.cols as usize != target.in_dim() || l.b.rows as usize != target.out_dim() {
                return Err(format!(
                    "layer {}: adapter is {}x{} but the base layer is {}x{}",
                    l.layer,
                    l.b.rows,
                    l.a.cols,
                    target.out_dim(),
                    target.in_dim()
                ));
            }
        }
        Ok(())
    }
}
