//! The audit of a compiled packet: validation of its values, norms and size, fidelity to the
//! trained policy, and adversarial probing with bounded observation perturbations, all run
//! through the edge runtime ([`CompiledPolicy`]) that agents will use.

use std::collections::BTreeMap;

use plasma_packets::{
    ActionSpace, AdapterBody, BaseBody, CompiledPolicy, Digest, FloatLora, FloatPolicy, Kernel,
    ObsNorm, OwnedAction, PacketContent, PacketKind, Scratch, decode_unverified,
};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde::{Deserialize, Serialize};

use super::Verdict;
use super::stats::subsample;
use crate::error::{Result, WorldModelError, check_finite};

/// Coefficients of the packet checks, each applied to a figure of the trained policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacketAuditConfig {
    /// A layer's norm `‖[W | b]‖_F` may be at most this multiple of the trained policy's
    /// (int8 quantization changes it by well under 1%).
    pub norm_coef: f32,
    /// With a trained adapter as reference: each layer's LoRA delta ratio
    /// `‖(α/r)·B·A‖_F / ‖W‖_F` may be at most this multiple of the trained adapter's.
    pub delta_coef: f32,
    /// Without a trained adapter as reference: the largest delta ratio accepted (an
    /// adapter that changes a layer by more than the layer's own size is not an
    /// adaptation).
    pub max_delta_ratio: f32,
    /// Largest relative difference of the packet's observation normalization from the
    /// trained policy's.
    pub obs_norm_tolerance: f32,
    /// Perturbation bound: each observation value moves by at most this fraction of the
    /// real states' standard deviation in that dimension.
    pub probe_epsilon: f32,
    /// Perturbations per probed state (corners of the bounding box, random signs).
    pub probe_samples: usize,
    /// Most real states probed (a uniform subsample).
    pub max_probe_states: usize,
    /// Flip-rate limit: `flip_coef × the trained policy's flip rate + flip_slack`.
    pub flip_coef: f32,
    /// See `flip_coef` (int8 quantization moves decision boundaries slightly).
    pub flip_slack: f32,
    /// Sensitivity limit: `sensitivity_coef ×` the trained policy's sensitivity.
    pub sensitivity_coef: f32,
    /// Least share of real states on which the packet acts as the trained policy
    /// (DESIGN.md's int8 target: 99%).
    pub min_agreement: f32,
    /// Continuous actions agree (and do not "flip") while every dimension differs by at
    /// most this fraction of its range.
    pub continuous_tolerance: f32,
    /// Largest base packet, bytes (DESIGN.md target: 32 KiB).
    pub max_base_bytes: usize,
    /// Largest adapter packet, bytes (DESIGN.md target: 4 KiB).
    pub max_adapter_bytes: usize,
    /// Seed of the perturbations and the subsampling.
    pub seed: u64,
}

impl Default for PacketAuditConfig {
    fn default() -> Self {
        PacketAuditConfig {
            norm_coef: 1.5,
            delta_coef: 1.5,
            max_delta_ratio: 1.0,
            obs_norm_tolerance: 1e-3,
            probe_epsilon: 0.05,
            probe_samples: 8,
            max_probe_states: 512,
            flip_coef: 2.0,
            flip_slack: 0.02,
            sensitivity_coef: 2.0,
            min_agreement: 0.99,
            continuous_tolerance: 0.05,
            max_base_bytes: 32 * 1024,
            max_adapter_bytes: 4 * 1024,
            seed: 0,
        }
    }
}

impl PacketAuditConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(format!("packet audit: {m}")));
        for (name, v) in [
            ("norm_coef", self.norm_coef),
            ("delta_coef", self.delta_coef),
            ("max_delta_ratio", self.max_delta_ratio),
            ("obs_norm_tolerance", self.obs_norm_tolerance),
            ("probe_epsilon", self.probe_epsilon),
            ("flip_coef", self.flip_coef),
            ("flip_slack", self.flip_slack),
            ("sensitivity_coef", self.sensitivity_coef),
            ("continuous_tolerance", self.continuous_tolerance),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and ≥ 0, got {v}"));
            }
        }
        if !(self.min_agreement.is_finite() && (0.0..=1.0).contains(&self.min_agreement)) {
            return bad(format!(
                "min_agreement must be in [0, 1], got {}",
                self.min_agreement
            ));
        }
        if self.probe_samples == 0 || self.max_probe_states == 0 {
            return bad("probe_samples and max_probe_states must be ≥ 1".into());
        }
        Ok(())
    }
}

/// The packet checks' limits, calibrated from the trained policy (and adapter) on real
/// states by [`PacketLimits::calibrate`]. Serializable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketLimits {
    /// The coefficients used.
    pub config: PacketAuditConfig,
    /// Observation normalization of the trained policy.
    pub obs_norm: ObsNorm,
    /// The trained policy's action space.
    pub action_space: ActionSpace,
    /// Layer shapes `(out, in)` of the trained policy.
    pub layer_shapes: Vec<(usize, usize)>,
    /// `‖[W | b]‖_F` of each layer of the trained policy.
    pub layer_norms: Vec<f32>,
    /// Largest delta ratio accepted per base layer (0 for layers the trained adapter
    /// leaves alone; all `max_delta_ratio` without a reference adapter).
    pub max_delta_ratios: Vec<f32>,
    /// The real states probed, row-major `[N, obs_dim]`.
    pub probe_states: Vec<f32>,
    /// Perturbation bound per observation dimension.
    pub probe_epsilon: Vec<f32>,
    /// The trained policy's actions on the probe states (discrete: the index; continuous:
    /// the values), row-major.
    pub reference_actions: Vec<f32>,
    /// The trained policy's action-flip rate under the perturbations.
    pub reference_flip_rate: f32,
    /// Flip rate accepted.
    pub max_flip_rate: f32,
    /// The trained policy's sensitivity: mean `‖Δ raw outputs‖₂` under the perturbations.
    pub reference_sensitivity: f32,
    /// Sensitivity accepted.
    pub max_sensitivity: f32,
}

/// The audit of one packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketAudit {
    /// Base or adapter.
    pub kind: PacketKind,
    /// `‖[W | b]‖_F` of each (adapted) layer as the runtime will use it.
    pub layer_norms: Vec<f32>,
    /// `‖(α/r)·B·A‖_F / ‖W‖_F` of each adapted base layer (empty for a base packet).
    pub delta_ratios: Vec<f32>,
    /// Share of real probe states on which the packet acts as the trained policy.
    pub agreement: f32,
    /// Share of perturbed states whose action differs from the unperturbed one.
    pub flip_rate: f32,
    /// Mean `‖Δ raw outputs‖₂` under the perturbations.
    pub sensitivity: f32,
    /// Encoded size, when given.
    pub bytes: Option<usize>,
    /// Approved or rejected, with reasons and figures.
    pub verdict: Verdict,
}

/// `value > limit`, NaN counting as beyond.
fn exceeds(value: f32, limit: f32) -> bool {
    value.is_nan() || value > limit
}

fn frobenius(values: impl Iterator<Item = f32>) -> f32 {
    values
        .map(|v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

/// `(α/r)·B·A`, row-major `out × in`.
fn lora_delta(a: &[f32], b: &[f32], rank: usize, out: usize, inp: usize, scale: f32) -> Vec<f32> {
    let mut delta = vec![0.0f32; out * inp];
    for o in 0..out {
        for k in 0..rank {
            let bk = b[o * rank + k] * scale;
            for c in 0..inp {
                delta[o * inp + c] += bk * a[k * inp + c];
            }
        }
    }
    delta
}

/// Actions as rows of floats (a discrete action is its index).
fn action_values(action: &OwnedAction) -> Vec<f32> {
    match action {
        OwnedAction::Discrete(i) => vec![*i as f32],
        OwnedAction::Continuous(v) => v.clone(),
    }
}

/// Whether two action rows differ: another index, or a continuous dimension moved by more
/// than `tolerance` of its range.
fn differs(space: &ActionSpace, a: &[f32], b: &[f32], tolerance: f32) -> bool {
    match space {
        ActionSpace::Discrete { .. } => a != b,
        ActionSpace::Continuous { low, high, .. } => a
            .iter()
            .zip(b)
            .zip(low.iter().zip(high))
            .any(|((x, y), (l, h))| (x - y).abs() > tolerance * (h - l).max(f32::MIN_POSITIVE)),
    }
}

/// Something that maps an observation to raw outputs and an action.
trait Probe {
    fn run(&mut self, obs: &[f32]) -> Option<(Vec<f32>, Vec<f32>)>;
}

struct FloatProbe<'a>(&'a FloatPolicy, Option<&'a FloatLora>);

impl Probe for FloatProbe<'_> {
    fn run(&mut self, obs: &[f32]) -> Option<(Vec<f32>, Vec<f32>)> {
        let out = self.0.forward(obs, self.1);
        let act = action_values(&self.0.act(obs, self.1));
        Some((out, act))
    }
}

struct CompiledProbe<'a>(&'a CompiledPolicy, Scratch);

impl Probe for CompiledProbe<'_> {
    fn run(&mut self, obs: &[f32]) -> Option<(Vec<f32>, Vec<f32>)> {
        let out = self.0.outputs(obs, &mut self.1).ok()?;
        let act = self.0.act(obs, &mut self.1).ok()?.to_owned();
        Some((out, action_values(&act)))
    }
}

/// Actions on the states, flip rate and sensitivity under the seeded perturbations. A
/// failed or non-finite evaluation counts as a flip with infinite sensitivity.
fn probe(
    p: &mut dyn Probe,
    space: &ActionSpace,
    states: &[f32],
    epsilon: &[f32],
    config: &PacketAuditConfig,
) -> (Vec<Option<Vec<f32>>>, f32, f32) {
    let d = epsilon.len();
    let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_add(0x5eed));
    let (mut flips, mut total, mut sens) = (0usize, 0usize, 0f64);
    let mut actions = vec![];
    let mut perturbed = vec![0.0f32; d];
    for s in states.chunks_exact(d) {
        let base = p.run(s);
        actions.push(base.as_ref().map(|(_, a)| a.clone()));
        for _ in 0..config.probe_samples {
            for ((x, &v), &e) in perturbed.iter_mut().zip(s).zip(epsilon) {
                *x = if rng.random::<bool>() { v + e } else { v - e };
            }
            total += 1;
            match (&base, p.run(&perturbed)) {
                (Some((out0, a0)), Some((out1, a1)))
                    if out1.iter().chain(out0).all(|v| v.is_finite()) =>
                {
                    if differs(space, a0, &a1, config.continuous_tolerance) {
                        flips += 1;
                    }
                    sens += f64::from(frobenius(out0.iter().zip(&out1).map(|(a, b)| a - b)));
                }
                _ => {
                    flips += 1;
                    sens = f64::INFINITY;
                }
            }
        }
    }
    let n = total.max(1) as f64;
    (actions, (flips as f64 / n) as f32, (sens / n) as f32)
}

impl PacketLimits {
    /// Calibrates the limits from the trained policy (`policy`, with `lora` when the
    /// packets to audit are adapters) on real `states` (row-major `[N, obs_dim]`, e.g.
    /// held-out experience), perturbing each dimension by `probe_epsilon × state_std`
    /// (the real states' std, e.g. [`super::Calibration::state_std`]).
    pub fn calibrate(
        policy: &FloatPolicy,
        lora: Option<&FloatLora>,
        states: &[f32],
        state_std: &[f32],
        config: &PacketAuditConfig,
    ) -> Result<PacketLimits> {
        config.validate()?;
        let d = policy.obs_dim();
        if d == 0 || state_std.len() != d {
            return Err(WorldModelError::shape(
                "packet audit state std",
                format!("{d} values (the policy's observation width)"),
                state_std.len(),
            ));
        }
        if states.is_empty() || !states.len().is_multiple_of(d) {
            return Err(WorldModelError::shape(
                "packet audit probe states",
                format!("a non-empty multiple of {d} values"),
                states.len(),
            ));
        }
        check_finite("packet audit probe states", states)?;
        check_finite("packet audit state std", state_std)?;
        // The reference must itself be sound: quantize it (which checks shapes and
        // finiteness) and check the adapter's fit.
        let base = policy
            .quantize()
            .map_err(|e| WorldModelError::Config(format!("trained policy is invalid: {e}")))?;
        if let Some(l) = lora {
            l.quantize(policy)
                .map_err(|e| WorldModelError::Config(format!("trained adapter is invalid: {e}")))?;
        }
        let layer_norms = policy
            .layers
            .iter()
            .map(|l| frobenius(l.weights.iter().chain(&l.bias).copied()))
            .collect();
        let max_delta_ratios = policy
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| match lora {
                None => config.max_delta_ratio,
                Some(lora) => lora.layers.iter().find(|a| a.layer == i).map_or(0.0, |a| {
                    let delta = lora_delta(
                        &a.a,
                        &a.b,
                        lora.rank,
                        l.out_dim,
                        l.in_dim,
                        lora.alpha / lora.rank as f32,
                    );
                    let ratio = frobenius(delta.into_iter())
                        / frobenius(l.weights.iter().copied()).max(f32::MIN_POSITIVE);
                    config.delta_coef * ratio
                }),
            })
            .collect();
        let rows = subsample(states.len() / d, config.max_probe_states, config.seed);
        let probe_states: Vec<f32> = rows
            .iter()
            .flat_map(|&r| states[r * d..(r + 1) * d].iter().copied())
            .collect();
        let probe_epsilon: Vec<f32> = state_std
            .iter()
            .map(|s| config.probe_epsilon * s.abs())
            .collect();
        let (actions, flip, sens) = probe(
            &mut FloatProbe(policy, lora),
            &policy.action_space,
            &probe_states,
            &probe_epsilon,
            config,
        );
        let reference_actions: Vec<f32> = actions.into_iter().flatten().flatten().collect();
        check_finite("trained policy's probe figures", &[flip, sens])?;
        Ok(PacketLimits {
            config: config.clone(),
            obs_norm: base.obs_norm.clone(),
            action_space: policy.action_space.clone(),
            layer_shapes: policy
                .layers
                .iter()
                .map(|l| (l.out_dim, l.in_dim))
                .collect(),
            layer_norms,
            max_delta_ratios,
            probe_states,
            probe_epsilon,
            reference_actions,
            reference_flip_rate: flip,
            max_flip_rate: config.flip_coef * flip + config.flip_slack,
            reference_sensitivity: sens,
            max_sensitivity: (config.sensitivity_coef * sens).max(1e-6),
        })
    }
}

/// Audits a base packet's body (`adapter = None`) or an adapter packet's body on its base
/// against limits calibrated from the trained policy. `encoded_bytes` is the size of the
/// packet audited (the adapter's when one is given).
///
/// Checks, each a reason for rejection:
/// - validity: the bodies pass their validation and compile in the edge runtime, every
///   dequantized weight is finite;
/// - weight norms: each layer's `‖[W | b]‖_F` (adapter merged) within `norm_coef` of the
///   trained policy's; the observation normalization and shapes are the trained policy's;
/// - LoRA deltas: each adapted layer's `‖(α/r)·B·A‖_F / ‖W‖_F` within its limit;
/// - size: within the byte limit of its kind;
/// - fidelity: the packet acts as the trained policy on at least `min_agreement` of the
///   real probe states;
/// - adversarial probing: under perturbations bounded by `probe_epsilon` real stds per
///   dimension, the action-flip rate and the output sensitivity stay within the limits
///   calibrated from the trained policy.
pub fn audit_packet(
    limits: &PacketLimits,
    base: &BaseBody,
    adapter: Option<&AdapterBody>,
    encoded_bytes: Option<usize>,
) -> Result<PacketAudit> {
    limits.config.validate()?;
    let config = &limits.config;
    let kind = if adapter.is_some() {
        PacketKind::Adapter
    } else {
        PacketKind::Base
    };
    let mut reasons = vec![];
    let mut figures = BTreeMap::new();
    let mut audit = PacketAudit {
        kind,
        layer_norms: vec![],
        delta_ratios: vec![],
        agreement: 0.0,
        flip_rate: 1.0,
        sensitivity: f32::INFINITY,
        bytes: encoded_bytes,
        verdict: Verdict::from_reasons(vec![], BTreeMap::new()),
    };
    let reject = |mut audit: PacketAudit, reasons: Vec<String>, figures| {
        audit.verdict = Verdict::from_reasons(reasons, figures);
        Ok(audit)
    };

    // Size.
    if let Some(bytes) = encoded_bytes {
        let limit = match kind {
            PacketKind::Base => config.max_base_bytes,
            PacketKind::Adapter => config.max_adapter_bytes,
        };
        figures.insert("bytes".into(), bytes as f64);
        figures.insert("max_bytes".into(), limit as f64);
        if bytes > limit {
            reasons.push(format!(
                "size: {bytes} bytes, more than the {limit} allowed for a {} packet",
                kind.as_str()
            ));
        }
    }

    // Validity: the runtime's own checks, then finiteness of what it will compute with.
    let compiled = match CompiledPolicy::compile(
        base,
        Digest::default(),
        adapter.map(|a| (a, Digest::default())),
        Kernel::Merged,
    ) {
        Ok(c) => c,
        Err(e) => {
            reasons.push(format!("invalid packet: {e}"));
            return reject(audit, reasons, figures);
        }
    };
    let shapes: Vec<(usize, usize)> = base
        .layers
        .iter()
        .map(|l| (l.out_dim(), l.in_dim()))
        .collect();
    if shapes != limits.layer_shapes || base.action_space != limits.action_space {
        reasons.push(format!(
            "shape: layers {shapes:?} and action space {:?} are not the trained policy's \
             ({:?}, {:?})",
            base.action_space, limits.layer_shapes, limits.action_space
        ));
        return reject(audit, reasons, figures);
    }
    let norm_diff = base
        .obs_norm
        .mean
        .iter()
        .zip(&limits.obs_norm.mean)
        .chain(base.obs_norm.std.iter().zip(&limits.obs_norm.std))
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-6))
        .fold(0.0f32, f32::max);
    figures.insert("obs_norm_max_relative_diff".into(), norm_diff.into());
    if norm_diff.is_nan() || norm_diff > config.obs_norm_tolerance {
        reasons.push(format!(
            "observation normalization differs from the trained policy's by {norm_diff:.3e} \
             (relative; allowed {:.1e})",
            config.obs_norm_tolerance
        ));
    }

    // Norms, with the adapter merged as the runtime merges it.
    for (i, layer) in base.layers.iter().enumerate() {
        let mut w = layer.weights.dequantize();
        let base_norm = frobenius(w.iter().copied());
        if let Some((ad, al)) = adapter.and_then(|ad| {
            ad.layers
                .iter()
                .find(|al| al.layer as usize == i)
                .map(|al| (ad, al))
        }) {
            let delta = lora_delta(
                &al.a.dequantize(),
                &al.b.dequantize(),
                ad.rank as usize,
                layer.out_dim(),
                layer.in_dim(),
                ad.scaling(),
            );
            let ratio = frobenius(delta.iter().copied()) / base_norm.max(f32::MIN_POSITIVE);
            let limit = limits.max_delta_ratios.get(i).copied().unwrap_or(0.0);
            audit.delta_ratios.push(ratio);
            figures.insert(format!("layer{i}_delta_ratio"), ratio.into());
            figures.insert(format!("layer{i}_max_delta_ratio"), limit.into());
            if exceeds(ratio, limit) {
                reasons.push(format!(
                    "LoRA delta of layer {i}: ‖ΔW‖/‖W‖ = {ratio:.3}, more than {limit:.3}"
                ));
            }
            w.iter_mut().zip(&delta).for_each(|(w, d)| *w += d);
        }
        if let Some(j) = w.iter().position(|v| !v.is_finite()) {
            reasons.push(format!("layer {i}: non-finite weight at {j}"));
            continue;
        }
        let norm = frobenius(w.into_iter().chain(layer.bias.iter().copied()));
        let reference = limits.layer_norms.get(i).copied().unwrap_or(0.0);
        let ratio = norm / reference.max(f32::MIN_POSITIVE);
        audit.layer_norms.push(norm);
        figures.insert(format!("layer{i}_norm"), norm.into());
        figures.insert(format!("layer{i}_norm_ratio"), ratio.into());
        if !(ratio <= config.norm_coef && ratio >= 1.0 / config.norm_coef.max(1e-6)) {
            reasons.push(format!(
                "layer {i}: weight norm {norm:.3} is {ratio:.2}× the trained policy's \
                 {reference:.3} (allowed 1/{c:.2}–{c:.2}×)",
                c = config.norm_coef
            ));
        }
    }

    // Fidelity and adversarial probing on the real states, through the runtime.
    let d = limits.obs_norm.mean.len();
    if compiled.obs_dim() != d || limits.probe_epsilon.len() != d {
        return Err(WorldModelError::shape(
            "packet limits",
            format!("observation width {}", compiled.obs_dim()),
            d,
        ));
    }
    let (actions, flip, sens) = probe(
        &mut CompiledProbe(&compiled, Scratch::default()),
        &limits.action_space,
        &limits.probe_states,
        &limits.probe_epsilon,
        config,
    );
    let width = match &limits.action_space {
        ActionSpace::Discrete { .. } => 1,
        ActionSpace::Continuous { low, .. } => low.len(),
    };
    let agreeing = actions
        .iter()
        .zip(limits.reference_actions.chunks_exact(width.max(1)))
        .filter(|(a, r)| {
            a.as_ref()
                .is_some_and(|a| !differs(&limits.action_space, a, r, config.continuous_tolerance))
        })
        .count();
    audit.agreement = agreeing as f32 / actions.len().max(1) as f32;
    audit.flip_rate = flip;
    audit.sensitivity = sens;
    figures.insert("agreement".into(), audit.agreement.into());
    figures.insert("flip_rate".into(), flip.into());
    figures.insert("max_flip_rate".into(), limits.max_flip_rate.into());
    figures.insert(
        "reference_flip_rate".into(),
        limits.reference_flip_rate.into(),
    );
    figures.insert("sensitivity".into(), sens.into());
    figures.insert("max_sensitivity".into(), limits.max_sensitivity.into());
    figures.insert(
        "reference_sensitivity".into(),
        limits.reference_sensitivity.into(),
    );
    if audit.agreement < config.min_agreement {
        reasons.push(format!(
            "fidelity: acts as the trained policy on {:.1}% of real states (required {:.1}%)",
            100.0 * audit.agreement,
            100.0 * config.min_agreement
        ));
    }
    if exceeds(flip, limits.max_flip_rate) {
        reasons.push(format!(
            "adversarial probing: {:.1}% of perturbations (±{:.0}% of a real std) flip the \
             action, limit {:.1}% (trained policy {:.1}%)",
            100.0 * flip,
            100.0 * config.probe_epsilon,
            100.0 * limits.max_flip_rate,
            100.0 * limits.reference_flip_rate
        ));
    }
    if exceeds(sens, limits.max_sensitivity) {
        reasons.push(format!(
            "adversarial probing: output sensitivity {sens:.4}, limit {:.4} (trained policy \
             {:.4})",
            limits.max_sensitivity, limits.reference_sensitivity
        ));
    }
    reject(audit, reasons, figures)
}

/// Decodes an encoded packet (without checking its signature: the audit is about content)
/// and audits it; an adapter packet is audited on `base`. A packet that does not decode is
/// rejected, not an error.
pub fn audit_encoded_packet(
    limits: &PacketLimits,
    bytes: &[u8],
    base: Option<&BaseBody>,
) -> Result<PacketAudit> {
    let rejected = |kind, reason: String| PacketAudit {
        kind,
        layer_norms: vec![],
        delta_ratios: vec![],
        agreement: 0.0,
        flip_rate: 1.0,
        sensitivity: f32::INFINITY,
        bytes: Some(bytes.len()),
        verdict: Verdict::from_reasons(vec![reason], BTreeMap::new()),
    };
    let vp = match decode_unverified(bytes) {
        Ok(vp) => vp,
        Err(e) => {
            return Ok(rejected(
                PacketKind::Base,
                format!("undecodable packet: {e}"),
            ));
        }
    };
    match &vp.packet.content {
        PacketContent::Base(body) => audit_packet(limits, body, None, Some(bytes.len())),
        PacketContent::Adapter { body, .. } => match base {
            Some(base) => audit_packet(limits, base, Some(body), Some(bytes.len())),
            None => Ok(rejected(
                PacketKind::Adapter,
                "an adapter packet is audited on its base, and none was given".into(),
            )),
        },
    }
}
