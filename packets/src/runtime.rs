//! The edge runtime: decoded packets compiled into a form that acts without allocating,
//! with lock-free adapter hot-swap and rollback.
//!
//! An [`EdgeRuntime`] owns the current [`CompiledPolicy`] in an `ArcSwap`. Each thread
//! that acts holds its own [`Actor`] (scratch buffers plus a handle to the slot), so
//! `act` takes no lock and allocates nothing; swapping an adapter builds the new policy
//! off the act path and publishes it with one atomic pointer store. Threads finish the
//! call they are in on the policy they started with.

use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::Packet;
use crate::codec::{Digest, PacketContent, SignatureStatus, VerifiedPacket};
use crate::error::PacketError;
use crate::error::{ActError, RuntimeError};
use crate::kernels::{self, Isa, Layer, LowRank, Weights};
use crate::model::{ActionSpace, AdapterBody, BaseBody, ContinuousMapping, Provenance};
use crate::signing::Verifier;

/// An action borrowed from the actor's output buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    /// Index of the chosen discrete action.
    Discrete(u32),
    /// Continuous action values, already within bounds.
    Continuous(&'a [f32]),
}

/// An owned action (for the reference path and for callers that keep actions).
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedAction {
    /// Index of the chosen discrete action.
    Discrete(u32),
    /// Continuous action values.
    Continuous(Vec<f32>),
}

impl Action<'_> {
    /// The index of a discrete action, `None` for a continuous one.
    pub fn as_discrete(&self) -> Option<u32> {
        match *self {
            Action::Discrete(i) => Some(i),
            Action::Continuous(_) => None,
        }
    }

    /// Copies the action out of the actor's buffer.
    pub fn to_owned(&self) -> OwnedAction {
        match *self {
            Action::Discrete(i) => OwnedAction::Discrete(i),
            Action::Continuous(v) => OwnedAction::Continuous(v.to_vec()),
        }
    }
}

/// The discrete action of a row of logits: the first maximum (NaN never wins). Trainers
/// use it so that their accuracy counts the packet runtime's choice.
#[inline]
pub fn argmax_first(outputs: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in outputs.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// Maps one raw output into `[l, h]` (NaN maps to `l`), as the runtime acts.
#[inline]
pub fn map_continuous(mapping: ContinuousMapping, y: f32, l: f32, h: f32) -> f32 {
    match mapping {
        ContinuousMapping::Clamp => {
            if y.is_nan() {
                l
            } else {
                y.clamp(l, h)
            }
        }
        ContinuousMapping::TanhScaled => {
            let t = if y.is_nan() { -1.0 } else { y.tanh() };
            // Written so that wide finite bounds cannot overflow to ∞ − ∞.
            (0.5 * (1.0 - t) * l + 0.5 * (1.0 + t) * h).clamp(l, h)
        }
    }
}

/// Maps raw network outputs to an action: argmax for discrete spaces (first maximum;
/// NaN never wins), clamp or tanh-scaling into the box for continuous ones.
pub(crate) fn map_action<'a>(
    space: &ActionSpace,
    outputs: &[f32],
    buf: &'a mut [f32],
) -> Action<'a> {
    match space {
        ActionSpace::Discrete { .. } => Action::Discrete(argmax_first(outputs)),
        ActionSpace::Continuous { low, high, mapping } => {
            for (((o, &y), &l), &h) in buf.iter_mut().zip(outputs).zip(low).zip(high) {
                *o = map_continuous(*mapping, y, l, h);
            }
            Action::Continuous(&buf[..outputs.len()])
        }
    }
}

/// How a policy is compiled for acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernel {
    /// Dequantize at load and fold the adapter in: `W' = s ⊙ W_q + (α/r)·B·A` in f32.
    /// The `latency` benchmark measured this the faster of the two (see the README).
    #[default]
    Merged,
    /// Keep int8 weights and apply the adapter unmerged per call:
    /// `y = s ⊙ (W_q x) + b + (α/r)·B(A x)`. A quarter of the memory for the base weights.
    Int8,
}

/// A policy ready to act: a base, optionally with an adapter, compiled for one [`Kernel`].
#[derive(Debug)]
pub struct CompiledPolicy {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    layers: Vec<Layer>,
    isa: Isa,
    action_space: ActionSpace,
    max_width: usize,
    max_rank: usize,
    base_digest: Digest,
    adapter_digest: Option<Digest>,
}

impl CompiledPolicy {
    /// Compiles a base (and adapter) body, validating both and the adapter's fit first.
    pub fn compile(
        base: &BaseBody,
        base_digest: Digest,
        adapter: Option<(&AdapterBody, Digest)>,
        kernel: Kernel,
    ) -> Result<Self, RuntimeError> {
        base.validate().map_err(RuntimeError::Shape)?;
        if let Some((a, _)) = adapter {
            a.validate().map_err(RuntimeError::Shape)?;
            a.check_fits(base).map_err(RuntimeError::Shape)?;
        }
        let mut layers = Vec::with_capacity(base.layers.len());
        for (i, l) in base.layers.iter().enumerate() {
            let (in_dim, out_dim) = (l.in_dim(), l.out_dim());
            let lora = adapter.and_then(|(a, _)| {
                a.layers.iter().find(|al| al.layer as usize == i).map(|al| {
                    let scaling = a.scaling();
                    LowRank {
                        rank: a.rank as usize,
                        a: al.a.dequantize(),
                        b: al.b.dequantize().into_iter().map(|v| v * scaling).collect(),
                    }
                })
            });
            let weights = match kernel {
                Kernel::Merged => {
                    let mut w = l.weights.dequantize();
                    if let Some(lr) = &lora {
                        for o in 0..out_dim {
                            let brow = &lr.b[o * lr.rank..(o + 1) * lr.rank];
                            for c in 0..in_dim {
                                let delta: f32 = brow
                                    .iter()
                                    .enumerate()
                                    .map(|(k, bv)| bv * lr.a[k * in_dim + c])
                                    .sum();
                                w[o * in_dim + c] += delta;
                            }
                        }
                    }
                    Weights::dense(w, in_dim, out_dim)
                }
                Kernel::Int8 => Weights::Int8 {
                    q: l.weights.values.clone(),
                    scales: l.weights.scales.clone(),
                    lora,
                },
            };
            layers.push(Layer {
                in_dim,
                out_dim,
                weights,
                bias: l.bias.clone(),
                activation: l.activation,
            });
        }
        let max_width = base
            .layers
            .iter()
            .map(|l| l.in_dim().max(l.out_dim()))
            .max()
            .unwrap_or(0);
        Ok(CompiledPolicy {
            mean: base.obs_norm.mean.clone(),
            inv_std: base.obs_norm.std.iter().map(|s| 1.0 / s).collect(),
            layers,
            isa: Isa::detect(),
            action_space: base.action_space.clone(),
            max_width,
            max_rank: adapter.map_or(0, |(a, _)| a.rank as usize),
            base_digest,
            adapter_digest: adapter.map(|(_, d)| d),
        })
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.mean.len()
    }

    /// The action space.
    pub fn action_space(&self) -> &ActionSpace {
        &self.action_space
    }

    /// Digest of the base packet.
    pub fn base_digest(&self) -> Digest {
        self.base_digest
    }

    /// Digest of the applied adapter packet, if any.
    pub fn adapter_digest(&self) -> Option<Digest> {
        self.adapter_digest
    }

    /// Runs the network; the raw outputs are left in `scratch.out`.
    fn forward(&self, obs: &[f32], scratch: &mut Scratch) -> Result<(), ActError> {
        if obs.len() != self.mean.len() {
            return Err(ActError::ObsDim {
                got: obs.len(),
                expected: self.mean.len(),
            });
        }
        let Scratch { a, b, t, .. } = scratch;
        for (((x, &o), &m), &s) in a.iter_mut().zip(obs).zip(&self.mean).zip(&self.inv_std) {
            if !o.is_finite() {
                return Err(ActError::NonFinite);
            }
            *x = (o - m) * s;
        }
        let in_a = kernels::run(self.isa, &self.layers, a, b, t);
        let out = if in_a { &scratch.a } else { &scratch.b };
        let n = self.action_space.output_dim();
        scratch.raw[..n].copy_from_slice(&out[..n]);
        Ok(())
    }

    /// Acts once using caller-owned scratch (for single-threaded embedding without an
    /// [`EdgeRuntime`]).
    pub fn act<'s>(&self, obs: &[f32], scratch: &'s mut Scratch) -> Result<Action<'s>, ActError> {
        scratch.fit(self);
        self.forward(obs, scratch)?;
        let n = self.action_space.output_dim();
        let Scratch { raw, out, .. } = scratch;
        Ok(map_action(&self.action_space, &raw[..n], out))
    }

    /// Raw network outputs (before the action mapping), for tests and diagnostics.
    pub fn outputs(&self, obs: &[f32], scratch: &mut Scratch) -> Result<Vec<f32>, ActError> {
        scratch.fit(self);
        self.forward(obs, scratch)?;
        Ok(scratch.raw[..self.action_space.output_dim()].to_vec())
    }
}

/// Per-thread buffers for acting. Sized once per policy shape; `act` never reallocates
/// them while the shape stays the same.
#[derive(Debug, Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    t: Vec<f32>,
    raw: Vec<f32>,
    out: Vec<f32>,
}

impl Scratch {
    #[inline]
    fn fit(&mut self, p: &CompiledPolicy) {
        let n = p.action_space.output_dim();
        if self.a.len() < p.max_width || self.t.len() < p.max_rank || self.out.len() < n {
            self.a.resize(p.max_width, 0.0);
            self.b.resize(p.max_width, 0.0);
            self.t.resize(p.max_rank, 0.0);
            self.raw.resize(n, 0.0);
            self.out.resize(n, 0.0);
        }
    }
}

/// A verified base packet as loaded.
#[derive(Debug, Clone)]
struct LoadedBase {
    digest: Digest,
    body: Arc<BaseBody>,
    provenance: Provenance,
}

/// A verified adapter packet as loaded.
#[derive(Debug, Clone)]
struct LoadedAdapter {
    digest: Digest,
    body: Arc<AdapterBody>,
    provenance: Provenance,
}

#[derive(Debug)]
struct Control {
    base: LoadedBase,
    adapter: Option<LoadedAdapter>,
    /// Previous adapter states, newest last, for rollback.
    history: Vec<Option<LoadedAdapter>>,
}

/// How many previous adapter states [`EdgeRuntime::rollback`] can return to.
pub const ROLLBACK_DEPTH: usize = 8;

/// A loaded base policy with an optional adapter, shared by any number of [`Actor`]s.
#[derive(Debug)]
pub struct EdgeRuntime {
    slot: Arc<ArcSwap<CompiledPolicy>>,
    control: Mutex<Control>,
    verifier: Verifier,
    kernel: Kernel,
}

/// What the runtime is running now.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Digest of the base packet.
    pub base: Digest,
    /// Digest of the adapter packet, if one is applied.
    pub adapter: Option<Digest>,
    /// Provenance of the base.
    pub base_provenance: Provenance,
    /// Provenance of the adapter.
    pub adapter_provenance: Option<Provenance>,
}

impl EdgeRuntime {
    /// Decodes, verifies and loads a base packet. Adapters applied later are verified
    /// with the same `verifier`.
    pub fn load(
        base_packet: &[u8],
        verifier: Verifier,
        kernel: Kernel,
    ) -> Result<Self, RuntimeError> {
        let vp = Packet::decode(base_packet, &verifier)?;
        Self::from_verified(vp, verifier, kernel)
    }

    /// Loads a base packet decoded by [`Packet::decode`]. Packets from
    /// [`crate::decode_unverified`] are refused: their signature was never checked.
    pub fn from_verified(
        vp: VerifiedPacket,
        verifier: Verifier,
        kernel: Kernel,
    ) -> Result<Self, RuntimeError> {
        check_trusted(&vp, &verifier)?;
        let base = into_base(vp)?;
        let compiled = CompiledPolicy::compile(&base.body, base.digest, None, kernel)?;
        Ok(EdgeRuntime {
            slot: Arc::new(ArcSwap::from_pointee(compiled)),
            control: Mutex::new(Control {
                base,
                adapter: None,
                history: Vec::new(),
            }),
            verifier,
            kernel,
        })
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        // Every mutation does its fallible work (decode, compile) before it changes
        // anything, and the changes after it cannot panic, so a poisoned lock still
        // guards a consistent Control.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new actor for one thread.
    pub fn actor(&self) -> Actor {
        Actor {
            slot: Arc::clone(&self.slot),
            scratch: Scratch::default(),
        }
    }

    /// The policy now in effect.
    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.slot.load_full()
    }

    /// What is loaded now.
    pub fn loaded(&self) -> Loaded {
        let c = self.control();
        Loaded {
            base: c.base.digest,
            adapter: c.adapter.as_ref().map(|a| a.digest),
            base_provenance: c.base.provenance.clone(),
            adapter_provenance: c.adapter.as_ref().map(|a| a.provenance.clone()),
        }
    }

    /// Decodes, verifies and hot-swaps in an adapter packet; returns its digest. The
    /// adapter must belong to the loaded base.
    pub fn apply_adapter(&self, adapter_packet: &[u8]) -> Result<Digest, RuntimeError> {
        let vp = Packet::decode(adapter_packet, &self.verifier)?;
        self.apply_verified_adapter(vp)
    }

    /// Hot-swaps in an adapter packet decoded by [`Packet::decode`] (not by
    /// [`crate::decode_unverified`]).
    pub fn apply_verified_adapter(&self, vp: VerifiedPacket) -> Result<Digest, RuntimeError> {
        check_trusted(&vp, &self.verifier)?;
        let digest = vp.digest;
        let PacketContent::Adapter { base_digest, body } = vp.packet.content else {
            return Err(RuntimeError::WrongKind {
                expected: "adapter",
            });
        };
        let mut c = self.control();
        if c.adapter.as_ref().is_some_and(|a| a.digest == digest) {
            return Ok(digest);
        }
        if base_digest != c.base.digest {
            return Err(RuntimeError::BaseMismatch {
                adapter_base: base_digest.to_hex(),
                loaded_base: c.base.digest.to_hex(),
            });
        }
        let compiled = CompiledPolicy::compile(
            &c.base.body,
            c.base.digest,
            Some((&body, digest)),
            self.kernel,
        )?;
        let loaded = LoadedAdapter {
            digest,
            body: Arc::new(body),
            provenance: vp.packet.provenance,
        };
        self.slot.store(Arc::new(compiled));
        let previous = c.adapter.replace(loaded);
        push_history(&mut c.history, previous);
        Ok(digest)
    }

    /// Returns to the plain base policy (the adapter state is kept for rollback). Does
    /// nothing when no adapter is applied.
    pub fn remove_adapter(&self) -> Result<(), RuntimeError> {
        let mut c = self.control();
        if c.adapter.is_none() {
            return Ok(());
        }
        let compiled = CompiledPolicy::compile(&c.base.body, c.base.digest, None, self.kernel)?;
        self.slot.store(Arc::new(compiled));
        let previous = c.adapter.take();
        push_history(&mut c.history, previous);
        Ok(())
    }

    /// Restores the adapter state before the last swap; returns the digest now applied.
    pub fn rollback(&self) -> Result<Option<Digest>, RuntimeError> {
        let mut c = self.control();
        let Some(previous) = c.history.pop() else {
            return Err(RuntimeError::NothingToRollBack);
        };
        let compiled = CompiledPolicy::compile(
            &c.base.body,
            c.base.digest,
            previous.as_ref().map(|a| (a.body.as_ref(), a.digest)),
            self.kernel,
        );
        let compiled = match compiled {
            Ok(p) => p,
            Err(e) => {
                c.history.push(previous);
                return Err(e);
            }
        };
        self.slot.store(Arc::new(compiled));
        let digest = previous.as_ref().map(|a| a.digest);
        c.adapter = previous;
        Ok(digest)
    }

    /// Replaces the base policy (dropping the adapter and the rollback history, which
    /// belonged to the old base).
    pub fn replace_base(&self, base_packet: &[u8]) -> Result<Digest, RuntimeError> {
        let vp = Packet::decode(base_packet, &self.verifier)?;
        let base = into_base(vp)?;
        let compiled = CompiledPolicy::compile(&base.body, base.digest, None, self.kernel)?;
        let mut c = self.control();
        let digest = base.digest;
        self.slot.store(Arc::new(compiled));
        c.base = base;
        c.adapter = None;
        c.history.clear();
        Ok(digest)
    }
}

/// A packet may act only if its signature was verified, or it is unsigned and the
/// verifier explicitly allows that.
fn check_trusted(vp: &VerifiedPacket, verifier: &Verifier) -> Result<(), RuntimeError> {
    match vp.signature() {
        SignatureStatus::Verified => Ok(()),
        SignatureStatus::Unsigned if verifier.allow_unsigned => Ok(()),
        SignatureStatus::Unsigned => Err(PacketError::Unsigned.into()),
        SignatureStatus::NotChecked => Err(PacketError::BadSignature.into()),
    }
}

fn push_history(history: &mut Vec<Option<LoadedAdapter>>, state: Option<LoadedAdapter>) {
    if history.len() == ROLLBACK_DEPTH {
        history.remove(0);
    }
    history.push(state);
}

fn into_base(vp: VerifiedPacket) -> Result<LoadedBase, RuntimeError> {
    match vp.packet.content {
        PacketContent::Base(body) => Ok(LoadedBase {
            digest: vp.digest,
            body: Arc::new(body),
            provenance: vp.packet.provenance,
        }),
        PacketContent::Adapter { .. } => Err(RuntimeError::WrongKind { expected: "base" }),
    }
}

/// One thread's handle for acting: lock-free, allocation-free after the first call.
#[derive(Debug)]
pub struct Actor {
    slot: Arc<ArcSwap<CompiledPolicy>>,
    scratch: Scratch,
}

impl Actor {
    /// The action for one raw observation under the policy in effect now.
    #[inline]
    pub fn act(&mut self, obs: &[f32]) -> Result<Action<'_>, ActError> {
        let policy = self.slot.load();
        self.scratch.fit(&policy);
        policy.forward(obs, &mut self.scratch)?;
        let n = policy.action_space.output_dim();
        let Scratch { raw, out, .. } = &mut self.scratch;
        Ok(map_action(&policy.action_space, &raw[..n], out))
    }

    /// Like [`Actor::act`], also naming the policy that chose the action (base digest,
    /// adapter digest), read from the same snapshot — for labelling uploaded experience.
    #[inline]
    pub fn act_traced(
        &mut self,
        obs: &[f32],
    ) -> Result<(Action<'_>, Digest, Option<Digest>), ActError> {
        let policy = self.slot.load();
        self.scratch.fit(&policy);
        policy.forward(obs, &mut self.scratch)?;
        let n = policy.action_space.output_dim();
        let Scratch { raw, out, .. } = &mut self.scratch;
        Ok((
            map_action(&policy.action_space, &raw[..n], out),
            policy.base_digest,
            policy.adapter_digest,
        ))
    }

    /// Digests of the base and adapter in effect now (may change right after the call;
    /// use [`Actor::act_traced`] to know which policy chose an action).
    pub fn current(&self) -> (Digest, Option<Digest>) {
        let p = self.slot.load();
        (p.base_digest, p.adapter_digest)
    }
}
