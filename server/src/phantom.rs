//! Phantom paths drawn for people ([`PhantomReport`]): a few real start states, each
//! imagined by every ensemble member under the run's steering, the real continuation from
//! the same start beside them (with the model replaying the actions really taken), and the
//! failures the auditor predicts on every member's path. The dashboard draws them; the
//! report is stored with the training run or simulation that made it.

use burn::tensor::{Int, Tensor, TensorData};
use plasma_protocol::reports::{
    ImaginedBand, MemberFailure, PhantomPath, PhantomReport, RealEnd, RealPath, Steering,
};
use plasma_protocol::{Action, Transition};
use plasma_world_model::audit::{Calibration, audit_paths};
use plasma_world_model::burn;
use plasma_world_model::rollout::start_states;
use plasma_world_model::{
    ActionSequences, Driver, HostTrajectory, Policy, Result, RolloutOptions, WorldModel,
};

use crate::pipeline::Experience;

/// Start states drawn per report.
pub const PHANTOM_STARTS: usize = 6;

/// A real stretch of experience: transitions `start..start + len` of one agent, each
/// starting where the previous one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stretch {
    start: usize,
    len: usize,
    end: RealEnd,
}

/// The real continuation from transition `start`, at most `horizon` steps.
fn stretch(exp: &Experience, start: usize, horizon: usize) -> Stretch {
    let t = &exp.transitions;
    let agent = |i: usize| exp.agent_of.get(i).copied();
    let mut len = 0;
    let mut i = start;
    let end = loop {
        len += 1;
        if t[i].terminated {
            break RealEnd::Terminated;
        }
        if t[i].truncated {
            break RealEnd::Truncated;
        }
        if len >= horizon
            || i + 1 >= t.len()
            || agent(i + 1) != agent(i)
            || t[i + 1].obs != t[i].next_obs
        {
            break RealEnd::Continues;
        }
        i += 1;
    };
    Stretch { start, len, end }
}

/// `count` start transitions spread over the experience, preferring those with the
/// longest real continuations (up to `horizon`), in data order.
fn pick_starts(exp: &Experience, count: usize, horizon: usize) -> Vec<Stretch> {
    let n = exp.transitions.len();
    let candidates = (count * 8).clamp(1, n);
    let mut stretches: Vec<Stretch> = (0..candidates)
        .map(|k| stretch(exp, k * n / candidates, horizon))
        .collect();
    // Longest first; among equals, spread over the data (stable sort keeps the order).
    stretches.sort_by_key(|s| std::cmp::Reverse(s.len));
    stretches.truncate(count.min(n));
    stretches.sort_by_key(|s| s.start);
    stretches
}

/// Each start repeated once per member (path `s·E + e` follows member `e`).
fn replicated(rows: &[&[f32]], members: usize) -> Vec<f32> {
    rows.iter()
        .flat_map(|r| std::iter::repeat_n(*r, members).flatten().copied())
        .collect()
}

/// The band of paths `first..first + members` of `host` over their first `steps` steps.
fn band(
    host: &HostTrajectory,
    obs_dim: usize,
    first: usize,
    members: usize,
    steps: usize,
) -> ImaginedBand {
    let h = host.horizon;
    let rows = first..first + members;
    // The band ends before the first step with a non-finite value in any member (the
    // auditor reports it as a failure): JSON has no NaN, and nothing after it means much.
    let finite_at = |t: usize| {
        rows.clone().all(|p| {
            let at = (p * h + t) * obs_dim;
            host.obs[at..at + obs_dim].iter().all(|v| v.is_finite())
                && [
                    &host.rewards,
                    &host.continue_probs,
                    &host.uncertainty,
                    &host.in_support,
                ]
                .iter()
                .all(|v| v.get(p * h + t).is_none_or(|x| x.is_finite()))
        })
    };
    let steps = (0..steps.min(h))
        .find(|&t| !finite_at(t))
        .unwrap_or(steps.min(h));
    let mut b = ImaginedBand {
        mean: Vec::with_capacity(steps),
        low: Vec::with_capacity(steps),
        high: Vec::with_capacity(steps),
        reward: Vec::with_capacity(steps),
        alive: Vec::with_capacity(steps),
        uncertainty: Vec::with_capacity(steps),
    };
    let mut alive = vec![1f32; members];
    let mean_of = |f: &dyn Fn(usize) -> f32| rows.clone().map(f).sum::<f32>() / members as f32;
    for t in 0..steps {
        let (mut mean, mut low, mut high) = (
            vec![0f32; obs_dim],
            vec![f32::INFINITY; obs_dim],
            vec![f32::NEG_INFINITY; obs_dim],
        );
        for p in rows.clone() {
            let at = (p * h + t) * obs_dim;
            for (d, &v) in host.obs[at..at + obs_dim].iter().enumerate() {
                mean[d] += v / members as f32;
                low[d] = low[d].min(v);
                high[d] = high[d].max(v);
            }
        }
        for (k, p) in rows.clone().enumerate() {
            let cont = host.continue_probs.get(p * h + t).copied().unwrap_or(1.0);
            alive[k] *= if cont.is_finite() {
                cont.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        let support = |p: usize| host.in_support.get(p * h + t).copied().unwrap_or(1.0);
        b.alive.push(
            alive
                .iter()
                .zip(rows.clone())
                .map(|(a, p)| a * support(p))
                .sum::<f32>()
                / members as f32,
        );
        b.mean.push(mean);
        b.low.push(low);
        b.high.push(high);
        b.reward.push(mean_of(&|p| {
            host.rewards.get(p * h + t).copied().unwrap_or(0.0)
        }));
        b.uncertainty.push(mean_of(&|p| {
            host.uncertainty.get(p * h + t).copied().unwrap_or(0.0)
        }));
    }
    b
}

/// The recorded actions of `stretches`, each repeated per member and padded with its last
/// action to `steps`.
fn recorded_actions(
    transitions: &[Transition],
    stretches: &[Stretch],
    members: usize,
    steps: usize,
    device: &burn::tensor::Device,
) -> Option<ActionSequences> {
    let paths = stretches.len() * members;
    let action = |s: &Stretch, t: usize| &transitions[s.start + t.min(s.len - 1)].action;
    match &transitions[stretches.first()?.start].action {
        Action::Discrete(_) => {
            let mut ints = Vec::with_capacity(paths * steps);
            for s in stretches {
                let row: Vec<i64> = (0..steps)
                    .map(|t| match action(s, t) {
                        Action::Discrete(i) => i64::from(*i),
                        Action::Continuous(_) => 0,
                    })
                    .collect();
                for _ in 0..members {
                    ints.extend_from_slice(&row);
                }
            }
            Some(ActionSequences::Discrete(Tensor::<2, Int>::from_data(
                TensorData::new(ints, [paths, steps]),
                device,
            )))
        }
        Action::Continuous(first) => {
            let dim = first.len();
            let mut values = Vec::with_capacity(paths * steps * dim);
            for s in stretches {
                let mut row = Vec::with_capacity(steps * dim);
                for t in 0..steps {
                    match action(s, t) {
                        Action::Continuous(v) if v.len() == dim => row.extend_from_slice(v),
                        _ => row.extend(std::iter::repeat_n(0.0, dim)),
                    }
                }
                for _ in 0..members {
                    values.extend_from_slice(&row);
                }
            }
            Some(ActionSequences::Continuous(Tensor::<3>::from_data(
                TensorData::new(values, [paths, steps, dim]),
                device,
            )))
        }
    }
}

const RECORD: RolloutOptions<'static> = RolloutOptions {
    noise: plasma_world_model::Noise::Mean,
    uncertainty: true,
    record: true,
    discount: 1.0,
    uncertainty_penalty: 0.0,
    terminal_value: None,
};

/// Draws [`PHANTOM_STARTS`] start states of `exp` through `model` for `horizon` steps,
/// steered by `driver`, with their real continuations replayed, and audits every member's
/// path against `calibration`.
pub fn phantom_report(
    model: &dyn WorldModel,
    exp: &Experience,
    calibration: &Calibration,
    steering: Steering,
    driver: &mut dyn Policy,
    horizon: usize,
) -> Result<PhantomReport> {
    let obs_dim = exp.spec.observation_space.dim();
    let members = model.members().max(1);
    let device = model.device().clone();
    let stretches = pick_starts(exp, PHANTOM_STARTS, horizon);
    let starts: Vec<&[f32]> = stretches
        .iter()
        .map(|s| exp.transitions[s.start].obs.as_slice())
        .collect();
    let start = start_states(&replicated(&starts, members), obs_dim, &device)?;
    let imagined = model
        .rollout(start, Driver::Policy(driver), horizon, &RECORD)?
        .to_host()?;
    let audit = audit_paths(calibration, &imagined)?;

    let replay_steps = stretches.iter().map(|s| s.len).max().unwrap_or(0);
    let replayed =
        match recorded_actions(&exp.transitions, &stretches, members, replay_steps, &device) {
            Some(actions) if replay_steps > 0 => {
                let start = start_states(&replicated(&starts, members), obs_dim, &device)?;
                Some(
                    model
                        .rollout(start, Driver::Actions(&actions), replay_steps, &RECORD)?
                        .to_host()?,
                )
            }
            _ => None,
        };

    let paths = stretches
        .iter()
        .enumerate()
        .map(|(s, stretch)| {
            let first = s * members;
            let reports = &audit.paths[first..first + members];
            let mut reasons: Vec<String> = vec![];
            for r in reports.iter().filter(|r| !r.approved) {
                for reason in &r.reasons {
                    reasons.push(format!("member {}: {reason}", r.member));
                }
            }
            let real_steps = &exp.transitions[stretch.start..stretch.start + stretch.len];
            PhantomPath {
                start_index: stretch.start,
                agent_id: exp
                    .agent_of
                    .get(stretch.start)
                    .and_then(|&a| exp.agents.get(a))
                    .cloned(),
                start: starts[s].to_vec(),
                imagined: band(&imagined, obs_dim, first, members, horizon),
                real: replayed.as_ref().map(|host| RealPath {
                    obs: real_steps.iter().map(|t| t.next_obs.clone()).collect(),
                    reward: real_steps.iter().map(|t| t.reward as f32).collect(),
                    end: stretch.end,
                    replayed: band(host, obs_dim, first, members, stretch.len),
                }),
                failures: reports
                    .iter()
                    .flat_map(|r| {
                        r.failures.iter().map(|&event| MemberFailure {
                            member: r.member,
                            event,
                        })
                    })
                    .collect(),
                approved_members: reports.iter().filter(|r| r.approved).count(),
                reasons,
            }
        })
        .collect();
    Ok(PhantomReport {
        steering,
        horizon,
        members,
        obs_dim,
        disagreement_threshold: calibration.disagreement_threshold,
        reward_range: [calibration.reward_low, calibration.reward_high],
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plasma_protocol::TaskSpec;

    fn step(obs: f32, next: f32, terminated: bool) -> Transition {
        Transition {
            obs: vec![obs],
            action: Action::Discrete(0),
            reward: 1.0,
            next_obs: vec![next],
            terminated,
            truncated: false,
        }
    }

    fn experience(transitions: Vec<Transition>, agent_of: Vec<usize>) -> Experience {
        Experience {
            spec: TaskSpec {
                name: "t".into(),
                observation_space: plasma_protocol::Space::boxed(vec![-10.0], vec![10.0]).unwrap(),
                action_space: plasma_protocol::Space::discrete(2).unwrap(),
                max_episode_steps: None,
                termination: None,
            },
            transitions,
            agent_of,
            agents: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn a_stretch_follows_one_agent_until_its_episode_ends() {
        let exp = experience(
            vec![
                step(0.0, 1.0, false),
                step(1.0, 2.0, false),
                step(2.0, 3.0, true),
                step(0.0, 1.0, false),
                step(1.0, 2.0, false),
                // Another agent's step that happens to start where the last one ended.
                step(2.0, 3.0, false),
                step(5.0, 6.0, false),
            ],
            vec![0, 0, 0, 0, 0, 1, 1],
        );
        assert_eq!(
            stretch(&exp, 0, 50),
            Stretch {
                start: 0,
                len: 3,
                end: RealEnd::Terminated
            }
        );
        assert_eq!(
            stretch(&exp, 3, 50),
            Stretch {
                start: 3,
                len: 2,
                end: RealEnd::Continues
            }
        );
        // A gap in the observations ends the stretch.
        assert_eq!(stretch(&exp, 5, 50).len, 1);
        // So does the horizon.
        assert_eq!(
            stretch(&exp, 0, 2),
            Stretch {
                start: 0,
                len: 2,
                end: RealEnd::Continues
            }
        );
        // The longest continuations are picked, in data order.
        let picked = pick_starts(&exp, 2, 50);
        assert_eq!(
            picked.iter().map(|s| s.start).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }

    #[test]
    fn a_band_spans_the_members_and_tracks_survival() {
        // Two starts × two members × two steps of a 1-d observation.
        let host = HostTrajectory {
            paths: 4,
            horizon: 2,
            returns: vec![0.0; 4],
            obs: vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0],
            rewards: vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            continue_probs: vec![1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            uncertainty: vec![0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0, 0.0],
            in_support: vec![],
            members: vec![0, 1, 0, 1],
        };
        let b = band(&host, 1, 0, 2, 2);
        assert_eq!(b.mean, vec![vec![2.0], vec![3.0]]);
        assert_eq!(b.low, vec![vec![1.0], vec![2.0]]);
        assert_eq!(b.high, vec![vec![3.0], vec![4.0]]);
        assert_eq!(b.reward, vec![0.5, 1.0]);
        // Member 0 ends at step 1: half the mass survives it.
        assert_eq!(b.alive, vec![1.0, 0.5]);
        assert!((b.uncertainty[1] - 0.3).abs() < 1e-6);
        let second = band(&host, 1, 2, 2, 1);
        assert_eq!(second.mean, vec![vec![20.0]]);
        // A member gone non-finite at step 1 ends the band there.
        let mut diverged = host.clone();
        diverged.obs[3] = f32::NAN;
        assert_eq!(band(&diverged, 1, 0, 2, 2).mean, vec![vec![2.0]]);
        diverged.uncertainty[0] = f32::INFINITY;
        assert!(band(&diverged, 1, 0, 2, 2).mean.is_empty());
    }
}
