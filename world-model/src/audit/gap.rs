//! The sim-to-real gap: imagined returns against the returns agents report from the real
//! world.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::calibration::AuditConfig;
use super::stats::Summary;
use crate::error::{Result, WorldModelError, check_finite};

/// The comparison of imagined and real returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapReport {
    /// Imagined returns.
    pub imagined: Summary,
    /// Real returns reported by agents.
    pub real: Summary,
    /// `imagined mean − real mean`: positive when the model is optimistic (the usual sign
    /// of exploitation), negative when it is pessimistic.
    pub gap: f32,
    /// `gap / max(|real mean|, real std)`, 0 when both are 0.
    pub relative_gap: f32,
    /// The largest `|gap|` accepted: `gap_coef × max(real std, gap_relative_floor ×
    /// |real mean|)` — the real returns' own spread sets the scale.
    pub tolerance: f32,
    /// Rejected when `|gap| > tolerance`.
    pub verdict: Verdict,
}

/// Compares imagined returns (of the paths a policy was distilled from, or of the policy
/// rolled out in the model) with the real returns agents report for that policy.
///
/// The tolerance is calibrated on the real returns: `gap_coef` real standard deviations,
/// but never less than `gap_coef × gap_relative_floor × |real mean|` (real returns of a
/// solved task can all be equal, e.g. 500 on CartPole-v1, and have no spread).
pub fn sim_to_real_gap(imagined: &[f32], real: &[f32], config: &AuditConfig) -> Result<GapReport> {
    config.validate()?;
    for (what, v) in [("imagined returns", imagined), ("real returns", real)] {
        if v.is_empty() {
            return Err(WorldModelError::EmptyDataset(format!(
                "the sim-to-real gap needs {what}"
            )));
        }
        check_finite(what, v)?;
    }
    let (im, re) = (Summary::of(imagined), Summary::of(real));
    let gap = im.mean - re.mean;
    let scale = re.mean.abs().max(re.std);
    let relative_gap = if scale > 0.0 { gap / scale } else { 0.0 };
    let tolerance = config.gap_coef * re.std.max(config.gap_relative_floor * re.mean.abs());
    let mut figures = BTreeMap::new();
    figures.insert("imagined_mean".into(), im.mean.into());
    figures.insert("real_mean".into(), re.mean.into());
    figures.insert("real_std".into(), re.std.into());
    figures.insert("gap".into(), gap.into());
    figures.insert("relative_gap".into(), relative_gap.into());
    figures.insert("tolerance".into(), tolerance.into());
    figures.insert("imagined_count".into(), im.count as f64);
    figures.insert("real_count".into(), re.count as f64);
    let mut reasons = vec![];
    if gap.abs() > tolerance {
        reasons.push(format!(
            "sim-to-real gap: imagined mean return {:.3} vs real {:.3} ({} by {:.3}, \
             tolerance {:.3})",
            im.mean,
            re.mean,
            if gap > 0.0 {
                "the model is optimistic"
            } else {
                "the model is pessimistic"
            },
            gap.abs(),
            tolerance
        ));
    }
    Ok(GapReport {
        imagined: im,
        real: re,
        gap,
        relative_gap,
        tolerance,
        verdict: Verdict::from_reasons(reasons, figures),
    })
}
