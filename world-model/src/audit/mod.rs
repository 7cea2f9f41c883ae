//! The Judicial Auditor: checks phantom paths and compiled packets before they are used,
//! and gives a [`Verdict`] — approved or rejected, with the reasons and the figures.
//!
//! Every detector is a documented function whose threshold is **calibrated on real data**
//! ([`Calibration::fit`], [`PacketLimits::calibrate`]): a high quantile of a statistic
//! measured on real, held-out data, multiplied by a documented coefficient (MOReL's recipe:
//! "threshold = coefficient × the discrepancy measured on the real dataset"). Change the
//! data and the thresholds change; the coefficients live in [`AuditConfig`] and
//! [`PacketAuditConfig`].
//!
//! | detector | statistic | threshold |
//! |---|---|---|
//! | model exploitation ([`audit_paths`]) | share of a path's earned return (reward above the lowest non-spike reward `reward_low`, alive-weighted) collected at steps whose member disagreement `u` exceeds `τ_u` | `τ_u = disagreement_coef × q(u on real held-out transitions)`; flagged when the share exceeds `exploit_share` |
//! | reward spikes ([`audit_paths`]) | predicted rewards outside the real reward range | `[min − k·s, max + k·s]`, `s` = max(real reward std, `q` of the model's reward error on held-out transitions), `k = reward_coef` |
//! | distribution shift ([`audit_paths`], [`audit_states`]) | nearest-neighbour distance of a state to the training states, per-dimension standardized | `τ_s = shift_coef × q(distance of held-out real states)` |
//! | failure modes ([`FailureReport`]) | states where the continue probability falls below `collapse_continue` or a detector fires, with the states that led there | — (a summary for operators) |
//! | packet validation ([`audit_packet`]) | finite values, per-layer weight norms, LoRA-delta norms, sizes, agreement with the trained policy | the trained policy's norms × `norm_coef`; delta/base ratio; byte limits of DESIGN.md |
//! | adversarial probing ([`audit_packet`]) | action-flip rate and output sensitivity under bounded observation perturbations (a fraction of the real state std) on real states | the trained policy's own flip rate and sensitivity × coefficients |
//! | sim-to-real gap ([`sim_to_real_gap`]) | imagined mean return − real mean return | `gap_coef × max(real std, gap_relative_floor × |real mean|)` |
//!
//! Rejected paths are left out of distillation ([`PathAudit::approved`] is the mask); a
//! rejected packet cannot be deployed unless an operator forces it
//! ([`Verdict::audit_status`]).

mod agents;
mod calibration;
mod gap;
mod packet;
mod paths;
mod stats;

pub use plasma_protocol::reports::{Verdict, VerdictStatus};

pub use agents::{AgentCheck, AgentCheckConfig, AgentScore, check_agents};
pub use calibration::{AuditConfig, Calibration, ShiftReport, audit_states};
pub use gap::{GapReport, sim_to_real_gap};
pub use packet::{
    PacketAudit, PacketAuditConfig, PacketLimits, audit_encoded_packet, audit_packet,
};
pub use paths::{
    Condition, Detector, DetectorCheck, Direction, FailureEvent, FailureKind, FailureMode,
    FailureReport, PathAudit, PathFlags, PathReport, audit_paths, audit_trajectory,
};
pub use stats::Summary;

#[cfg(test)]
mod tests;
