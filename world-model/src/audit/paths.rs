//! The audit of phantom paths: model exploitation, reward spikes, distribution shift, and
//! the failure modes the simulation predicts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::calibration::Calibration;
use super::stats::Summary;
use crate::error::{Result, WorldModelError};
use crate::rollout::{HostTrajectory, Trajectory};
pub use plasma_protocol::reports::{
    Condition, Detector, DetectorCheck, Direction, FailureEvent, FailureKind, FailureMode,
    FailureReport,
};

/// Which detectors fired on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PathFlags {
    /// More than [`super::AuditConfig::exploit_share`] of the path's earned return comes
    /// from steps where the members disagree beyond `τ_u`.
    pub exploitation: bool,
    /// A live step's predicted reward lies outside the real reward range (widened by
    /// `reward_coef` spreads).
    pub reward_spike: bool,
    /// A live state lies farther than `τ_s` from the training data.
    pub distribution_shift: bool,
    /// A live step has a NaN or infinite reward, state, disagreement or continue
    /// probability.
    pub non_finite: bool,
}

impl PathFlags {
    /// Whether any detector fired.
    pub fn any(&self) -> bool {
        self.exploitation || self.reward_spike || self.distribution_shift || self.non_finite
    }
}

/// The figures of one audited path. "Live" steps are those the path reaches with
/// probability at least [`super::AuditConfig::min_alive`] (the product of the predicted
/// continue probabilities before the step, and of the in-support mass when recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    /// Index of the path in the trajectory.
    pub path: usize,
    /// Ensemble member the path followed.
    pub member: usize,
    /// The path's imagined return, as the rollout computed it.
    pub imagined_return: f32,
    /// Live steps.
    pub live_steps: usize,
    /// Largest member disagreement on a live step.
    pub max_disagreement: f32,
    /// Live steps with disagreement beyond `τ_u`.
    pub beyond_steps: usize,
    /// `Σ a_t · max(r_t − reward_low, 0)` over live steps: the return earned above the
    /// lowest reward that is not a spike, weighted by the probability `a_t` of being alive.
    pub earned_return: f32,
    /// The part of `earned_return` earned at steps beyond `τ_u`.
    pub exploited_return: f32,
    /// `exploited_return / earned_return` (0 when nothing was earned).
    pub exploit_share: f32,
    /// Largest predicted reward on a live step.
    pub max_reward: f32,
    /// Smallest predicted reward on a live step.
    pub min_reward: f32,
    /// Live steps whose reward is a spike.
    pub spike_steps: usize,
    /// Largest distance of a live reward outside the real range, in reward spreads.
    pub max_reward_excess: f32,
    /// Largest distance of a live state to the training data (standardized units).
    pub max_shift: f32,
    /// Live steps beyond `τ_s`.
    pub shift_steps: usize,
    /// First live step whose continue probability is below `collapse_continue`.
    pub collapse_step: Option<usize>,
    /// Detectors that fired.
    pub flags: PathFlags,
    /// Whether the path may be distilled from (no detector fired).
    pub approved: bool,
    /// Why it was rejected.
    pub reasons: Vec<String>,
    /// The first step of each failure the path predicts (termination, exploitation,
    /// reward spike, distribution shift, non-finite values), in that order.
    pub failures: Vec<FailureEvent>,
}

/// The audit of a set of phantom paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathAudit {
    /// One report per path.
    pub paths: Vec<PathReport>,
    /// Per path: may it be distilled from? (The mask to filter distillation data.)
    pub approved: Vec<bool>,
    /// Paths each detector flagged.
    pub flagged: BTreeMap<String, usize>,
    /// What could go wrong.
    pub failures: FailureReport,
    /// Every detector's worst figure against its threshold.
    pub detectors: Vec<DetectorCheck>,
    /// The verdict on the set: rejected when more than
    /// [`super::AuditConfig::max_rejected_share`] of the paths are rejected.
    pub verdict: Verdict,
}

impl PathAudit {
    /// Indices of the approved paths.
    pub fn approved_indices(&self) -> Vec<usize> {
        (0..self.approved.len())
            .filter(|&i| self.approved[i])
            .collect()
    }

    /// Share of the paths rejected.
    pub fn rejected_share(&self) -> f32 {
        let n = self.approved.len().max(1);
        self.approved.iter().filter(|a| !**a).count() as f32 / n as f32
    }
}

/// Audits a device trajectory (reads it back to the host first). See [`audit_paths`].
pub fn audit_trajectory(calibration: &Calibration, trajectory: &Trajectory) -> Result<PathAudit> {
    audit_paths(calibration, &trajectory.to_host()?)
}

/// Audits phantom paths against a calibration.
///
/// The trajectory must be recorded with the uncertainty (`RolloutOptions { record: true,
/// uncertainty: true, .. }`). For each path, over its live steps:
/// - exploitation: `exploited_return / earned_return > exploit_share` with at least one
///   step beyond `τ_u` (the return is earned where the model's members disagree more than
///   they do on real held-out transitions);
/// - reward spike: a reward outside `[reward_low, reward_high]`;
/// - distribution shift: a state farther than `τ_s` from the training states;
/// - non-finite values.
///
/// A path is approved when no detector fires. Steps after a predicted termination do not
/// count (they earn nothing), but the termination itself is reported as a failure mode.
pub fn audit_paths(calibration: &Calibration, trajectory: &HostTrajectory) -> Result<PathAudit> {
    calibration.validate()?;
    let cal = calibration;
    let config = &cal.config;
    let (p_count, h, d) = (trajectory.paths, trajectory.horizon, cal.obs_dim);
    let steps = p_count * h;
    if p_count == 0 || h == 0 {
        return Err(WorldModelError::shape(
            "audited trajectory",
            "at least one path and one step",
            format!("{p_count} paths × {h} steps"),
        ));
    }
    let check = |what: &str, len: usize, want: usize| {
        if len == want {
            Ok(())
        } else {
            Err(WorldModelError::shape(
                format!("audited trajectory {what}"),
                format!(
                    "{want} values (record it with RolloutOptions {{ record: true, \
                     uncertainty: true }})"
                ),
                len,
            ))
        }
    };
    check("observations", trajectory.obs.len(), steps * d)?;
    check("rewards", trajectory.rewards.len(), steps)?;
    check(
        "continue probabilities",
        trajectory.continue_probs.len(),
        steps,
    )?;
    check("uncertainty", trajectory.uncertainty.len(), steps)?;
    check("returns", trajectory.returns.len(), p_count)?;
    if !trajectory.in_support.is_empty() {
        check("in-support mass", trajectory.in_support.len(), steps)?;
    }

    let distances = cal.shift_distances(&trajectory.obs);
    // Earned return is counted from the lowest reward that is not a spike, so that a
    // step's share of it does not hinge on noise around a constant reward.
    let floor = cal.reward_low;
    let mut reports = Vec::with_capacity(p_count);
    let mut events: BTreeMap<FailureKind, Vec<(usize, usize)>> = BTreeMap::new();
    for p in 0..p_count {
        let mut alive = 1.0f32;
        let mut r = PathReport {
            path: p,
            member: trajectory.members.get(p).copied().unwrap_or(p),
            imagined_return: trajectory.returns[p],
            live_steps: 0,
            max_disagreement: 0.0,
            beyond_steps: 0,
            earned_return: 0.0,
            exploited_return: 0.0,
            exploit_share: 0.0,
            max_reward: f32::NEG_INFINITY,
            min_reward: f32::INFINITY,
            spike_steps: 0,
            max_reward_excess: 0.0,
            max_shift: 0.0,
            shift_steps: 0,
            collapse_step: None,
            flags: PathFlags::default(),
            approved: true,
            reasons: vec![],
            failures: vec![],
        };
        let (mut first_exploit, mut first_spike, mut first_shift, mut first_bad) =
            (None, None, None, None);
        for t in 0..h {
            let i = p * h + t;
            let support = match (t, trajectory.in_support.is_empty()) {
                (0, _) | (_, true) => 1.0,
                _ => trajectory.in_support[i - 1].clamp(0.0, 1.0),
            };
            let mass = alive * support;
            let (reward, cont, u) = (
                trajectory.rewards[i],
                trajectory.continue_probs[i],
                trajectory.uncertainty[i],
            );
            if mass >= config.min_alive {
                r.live_steps += 1;
                let state = &trajectory.obs[i * d..(i + 1) * d];
                let finite = reward.is_finite()
                    && cont.is_finite()
                    && u.is_finite()
                    && state.iter().all(|v| v.is_finite());
                if !finite {
                    first_bad.get_or_insert(t);
                } else {
                    r.max_disagreement = r.max_disagreement.max(u);
                    r.max_reward = r.max_reward.max(reward);
                    r.min_reward = r.min_reward.min(reward);
                    let earned = mass * (reward - floor).max(0.0);
                    r.earned_return += earned;
                    if u > cal.disagreement_threshold {
                        r.beyond_steps += 1;
                        r.exploited_return += earned;
                        if earned > 0.0 {
                            first_exploit.get_or_insert(t);
                        }
                    }
                    if reward < cal.reward_low || reward > cal.reward_high {
                        r.spike_steps += 1;
                        let excess = (reward - cal.reward.max).max(cal.reward.min - reward)
                            / cal.reward_spread;
                        r.max_reward_excess = r.max_reward_excess.max(excess);
                        first_spike.get_or_insert(t);
                    }
                    let dist = distances[i];
                    r.max_shift = r.max_shift.max(dist);
                    if dist > cal.shift_threshold {
                        r.shift_steps += 1;
                        first_shift.get_or_insert(t);
                    }
                    if cont < config.collapse_continue && r.collapse_step.is_none() {
                        r.collapse_step = Some(t);
                    }
                }
            }
            alive *= if cont.is_finite() {
                cont.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        if r.max_reward == f32::NEG_INFINITY {
            r.max_reward = 0.0;
        }
        if r.min_reward == f32::INFINITY {
            r.min_reward = 0.0;
        }
        r.exploit_share = if r.earned_return > 0.0 {
            r.exploited_return / r.earned_return
        } else {
            0.0
        };
        r.flags = PathFlags {
            exploitation: r.beyond_steps > 0
                && r.exploited_return > 0.0
                && r.exploit_share > config.exploit_share,
            reward_spike: r.spike_steps > 0,
            distribution_shift: r.shift_steps > 0,
            non_finite: first_bad.is_some(),
        };
        if r.flags.exploitation {
            r.reasons.push(format!(
                "model exploitation: {:.0}% of the earned return ({:.3} of {:.3}) comes from \
                 {} steps where member disagreement exceeds {:.4} (max {:.4})",
                100.0 * r.exploit_share,
                r.exploited_return,
                r.earned_return,
                r.beyond_steps,
                cal.disagreement_threshold,
                r.max_disagreement
            ));
        }
        if r.flags.reward_spike {
            r.reasons.push(format!(
                "reward spike: {} steps outside [{:.4}, {:.4}], up to {:.1} spreads beyond \
                 the real range",
                r.spike_steps, cal.reward_low, cal.reward_high, r.max_reward_excess
            ));
        }
        if r.flags.distribution_shift {
            r.reasons.push(format!(
                "distribution shift: {} states beyond distance {:.3} from the training \
                 data (max {:.3})",
                r.shift_steps, cal.shift_threshold, r.max_shift
            ));
        }
        if r.flags.non_finite {
            r.reasons
                .push("non-finite prediction on a live step".to_owned());
        }
        r.approved = !r.flags.any();
        for (kind, step) in [
            (FailureKind::Termination, r.collapse_step),
            (
                FailureKind::Exploitation,
                first_exploit.filter(|_| r.flags.exploitation),
            ),
            (FailureKind::RewardSpike, first_spike),
            (FailureKind::DistributionShift, first_shift),
            (FailureKind::NonFinite, first_bad),
        ] {
            if let Some(step) = step {
                events.entry(kind).or_default().push((p, step));
                r.failures.push(FailureEvent { kind, step });
            }
        }
        reports.push(r);
    }

    let failures = failure_report(cal, trajectory, &events);
    let approved: Vec<bool> = reports.iter().map(|r| r.approved).collect();
    let count = |f: fn(&PathFlags) -> bool| reports.iter().filter(|r| f(&r.flags)).count();
    let mut flagged = BTreeMap::new();
    flagged.insert("exploitation".to_owned(), count(|f| f.exploitation));
    flagged.insert("reward_spike".to_owned(), count(|f| f.reward_spike));
    flagged.insert(
        "distribution_shift".to_owned(),
        count(|f| f.distribution_shift),
    );
    flagged.insert("non_finite".to_owned(), count(|f| f.non_finite));
    let rejected = approved.iter().filter(|a| !**a).count();
    let rejected_share = rejected as f32 / p_count as f32;

    let mut figures = BTreeMap::new();
    cal.figures(&mut figures);
    figures.insert("paths".into(), p_count as f64);
    figures.insert("rejected".into(), rejected as f64);
    figures.insert("rejected_share".into(), rejected_share.into());
    for (k, v) in &flagged {
        figures.insert(format!("flagged_{k}"), *v as f64);
    }
    let mean_return = |keep: bool| {
        let v: Vec<f32> = reports
            .iter()
            .filter(|r| r.approved == keep)
            .map(|r| r.imagined_return)
            .collect();
        (!v.is_empty()).then(|| f64::from(Summary::of(&v).mean))
    };
    if let Some(m) = mean_return(true) {
        figures.insert("mean_return_approved".into(), m);
    }
    if let Some(m) = mean_return(false) {
        figures.insert("mean_return_rejected".into(), m);
    }
    let mut reasons = vec![];
    if rejected_share > config.max_rejected_share {
        let detail: Vec<String> = flagged
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        reasons.push(format!(
            "{rejected} of {p_count} paths rejected ({:.0}%, allowed {:.0}%): {}",
            100.0 * rejected_share,
            100.0 * config.max_rejected_share,
            detail.join(", ")
        ));
    }
    let detectors = detector_checks(cal, &reports, &flagged, rejected_share);
    Ok(PathAudit {
        detectors,
        paths: reports,
        approved,
        flagged,
        failures,
        verdict: Verdict::from_reasons(reasons, figures),
    })
}

/// Each detector's worst figure over the paths' live steps against its threshold.
fn detector_checks(
    cal: &Calibration,
    reports: &[PathReport],
    flagged: &BTreeMap<String, usize>,
    rejected_share: f32,
) -> Vec<DetectorCheck> {
    let worst = |f: fn(&PathReport) -> f32| {
        reports
            .iter()
            .filter(|r| r.live_steps > 0)
            .map(f)
            .fold(0f32, f32::max)
    };
    let lowest_reward = reports
        .iter()
        .filter(|r| r.live_steps > 0)
        .map(|r| r.min_reward)
        .fold(f32::INFINITY, f32::min);
    let flagged = |k: &str| flagged.get(k).copied().unwrap_or(0);
    let above = |detector, measured: f32, threshold: f32, flagged, meaning: &str| DetectorCheck {
        detector,
        measured: measured.into(),
        threshold: threshold.into(),
        below: false,
        flagged,
        meaning: meaning.to_owned(),
    };
    let beyond = reports.iter().filter(|r| r.beyond_steps > 0).count();
    let spikes_low = reports
        .iter()
        .filter(|r| r.live_steps > 0 && r.min_reward < cal.reward_low)
        .count();
    let spikes_high = reports
        .iter()
        .filter(|r| r.live_steps > 0 && r.max_reward > cal.reward_high)
        .count();
    vec![
        above(
            Detector::Exploitation,
            worst(|r| r.exploit_share),
            cal.config.exploit_share,
            flagged("exploitation"),
            "share of a path's earned return earned where the members disagree beyond τ_u",
        ),
        above(
            Detector::Disagreement,
            worst(|r| r.max_disagreement),
            cal.disagreement_threshold,
            beyond,
            "member disagreement u on a live step (normalized units); τ_u from real held-out data",
        ),
        above(
            Detector::RewardHigh,
            worst(|r| r.max_reward),
            cal.reward_high,
            spikes_high,
            "largest predicted reward on a live step (the task's reward unit)",
        ),
        DetectorCheck {
            below: true,
            ..above(
                Detector::RewardLow,
                if lowest_reward.is_finite() {
                    lowest_reward
                } else {
                    0.0
                },
                cal.reward_low,
                spikes_low,
                "smallest predicted reward on a live step (the task's reward unit)",
            )
        },
        above(
            Detector::DistributionShift,
            worst(|r| r.max_shift),
            cal.shift_threshold,
            flagged("distribution_shift"),
            "distance of a live imagined state to the nearest training state (standardized units); τ_s from real held-out data",
        ),
        above(
            Detector::RejectedShare,
            rejected_share,
            cal.config.max_rejected_share,
            reports.iter().filter(|r| !r.approved).count(),
            "share of the paths rejected by any detector",
        ),
    ]
}

/// Summarizes the failure events (path, step) of each kind.
fn failure_report(
    cal: &Calibration,
    trajectory: &HostTrajectory,
    events: &BTreeMap<FailureKind, Vec<(usize, usize)>>,
) -> FailureReport {
    let (h, d) = (trajectory.horizon, cal.obs_dim);
    let paths = trajectory.paths;
    let state = |p: usize, t: usize| &trajectory.obs[(p * h + t) * d..(p * h + t + 1) * d];
    let mut modes: Vec<FailureMode> = events
        .iter()
        .map(|(&kind, ev)| {
            let n = ev.len();
            let steps: Vec<f32> = ev.iter().map(|&(_, t)| t as f32).collect();
            let (mut lo, mut hi, mut mean, mut prev_mean) = (
                vec![f32::INFINITY; d],
                vec![f32::NEG_INFINITY; d],
                vec![0f64; d],
                vec![0f64; d],
            );
            let (mut above, mut below, mut z_above, mut z_below) = (
                vec![0usize; d],
                vec![0usize; d],
                vec![0f64; d],
                vec![0f64; d],
            );
            for &(p, t) in ev {
                for (k, &v) in state(p, t).iter().enumerate() {
                    lo[k] = lo[k].min(v);
                    hi[k] = hi[k].max(v);
                    mean[k] += f64::from(v);
                }
                let before = state(p, t.saturating_sub(cal.config.condition_lookback));
                for (k, &v) in before.iter().enumerate() {
                    prev_mean[k] += f64::from(v);
                    let z = (v - cal.state_mean[k]) / cal.state_std[k];
                    if z > 1.0 {
                        above[k] += 1;
                        z_above[k] += f64::from(z);
                    } else if z < -1.0 {
                        below[k] += 1;
                        z_below[k] += f64::from(z);
                    }
                }
            }
            let avg = |v: Vec<f64>| v.into_iter().map(|x| (x / n as f64) as f32).collect();
            let mut conditions = vec![];
            for k in 0..d {
                for (count, zsum, direction) in [
                    (above[k], z_above[k], Direction::Above),
                    (below[k], z_below[k], Direction::Below),
                ] {
                    let share = count as f32 / n as f32;
                    if count > 0 && share >= 0.5 {
                        conditions.push(Condition {
                            dim: k,
                            direction,
                            share,
                            mean_z: (zsum / count as f64) as f32,
                        });
                    }
                }
            }
            conditions.sort_by(|a, b| {
                b.share
                    .total_cmp(&a.share)
                    .then(b.mean_z.abs().total_cmp(&a.mean_z.abs()))
            });
            let step = Summary::of(&steps);
            let mut description = format!(
                "{} in {n} of {paths} paths ({:.0}%), at steps {:.0}–{:.0} (mean {:.1})",
                kind.describe(),
                100.0 * n as f32 / paths as f32,
                step.min,
                step.max,
                step.mean
            );
            if conditions.is_empty() {
                description.push_str("; no common condition before it");
            } else {
                let words: Vec<String> = conditions
                    .iter()
                    .take(3)
                    .map(|c| {
                        format!(
                            "obs[{}] {} the training mean ({:+.1}σ) in {:.0}%",
                            c.dim,
                            match c.direction {
                                Direction::Above => "above",
                                Direction::Below => "below",
                            },
                            c.mean_z,
                            100.0 * c.share
                        )
                    })
                    .collect();
                description.push_str(&format!(
                    "; {} steps before: {}",
                    cal.config.condition_lookback,
                    words.join(", ")
                ));
            }
            FailureMode {
                kind,
                paths: n,
                share: n as f32 / paths as f32,
                step,
                state_min: lo,
                state_mean: avg(mean),
                state_max: hi,
                preceding_mean: avg(prev_mean),
                conditions,
                description,
            }
        })
        .collect();
    modes.sort_by(|a, b| b.paths.cmp(&a.paths).then(a.kind.cmp(&b.kind)));
    FailureReport { paths, modes }
}
