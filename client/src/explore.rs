//! Exploration while collecting experience. A packet's policy is deterministic, and the
//! client cannot plan (it has no world model), so what the agent uploads is what its
//! packets do: acting greedily with them repeats the states the last base already knew.
//! An [`Explorer`] perturbs the packet's actions for the steps an agent collects to learn
//! from — `ε`-greedy for discrete actions, Gaussian noise clipped to the box for
//! continuous ones — and acts at random before the first packet arrives. Evaluation (and
//! production control) uses the packet's own actions.

use plasma_packets::OwnedAction;
use plasma_protocol::Space;

/// How far the collected actions stray from the packet's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exploration {
    /// The packet's actions as they are.
    Greedy,
    /// With probability `epsilon`, a uniformly random action instead (discrete spaces;
    /// on a box, a uniform draw from the box).
    EpsilonGreedy {
        /// Probability of a random action, in `[0, 1]`.
        epsilon: f32,
    },
    /// Gaussian noise added to every dimension and clipped to the box, `std` in units of
    /// the dimension's half-range (unbounded dimensions: absolute); discrete spaces treat
    /// `std` as `epsilon`.
    Gaussian {
        /// Standard deviation of the noise, `≥ 0`.
        std: f32,
    },
}

impl Exploration {
    /// The product's default for an action space: `ε = 0.1` for discrete actions, noise
    /// of a tenth of the range for continuous ones.
    pub fn default_for(space: &Space) -> Self {
        match space {
            Space::Discrete { .. } => Exploration::EpsilonGreedy { epsilon: 0.1 },
            Space::Box { .. } => Exploration::Gaussian { std: 0.1 },
        }
    }
}

/// Perturbs actions of one action space (see the module docs); deterministic per seed.
#[derive(Debug, Clone)]
pub struct Explorer {
    space: Space,
    exploration: Exploration,
    rng: Xorshift,
}

/// xorshift64*: the explorer's generator (no dependency for a few draws per step).
#[derive(Debug, Clone)]
struct Xorshift(u64);

impl Xorshift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        // Box–Muller; 1 − u keeps the logarithm finite.
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

impl Explorer {
    /// An explorer of `space`, seeded.
    /// Rates outside their ranges are clamped into them (`ε` to `[0, 1]`, `std` to `≥ 0`).
    pub fn new(space: Space, exploration: Exploration, seed: u64) -> Self {
        let exploration = match exploration {
            Exploration::EpsilonGreedy { epsilon } => Exploration::EpsilonGreedy {
                epsilon: if epsilon.is_nan() {
                    0.0
                } else {
                    epsilon.clamp(0.0, 1.0)
                },
            },
            Exploration::Gaussian { std } => Exploration::Gaussian {
                std: if std.is_nan() { 0.0 } else { std.max(0.0) },
            },
            Exploration::Greedy => Exploration::Greedy,
        };
        Explorer {
            space,
            exploration,
            // splitmix64 of the seed: never the all-zero xorshift state.
            rng: Xorshift(splitmix(seed) | 1),
        }
    }

    /// A uniformly random action of the space (dimensions without two finite bounds: a
    /// standard normal, kept within the bound they have).
    pub fn random(&mut self) -> OwnedAction {
        let rng = &mut self.rng;
        match &self.space {
            Space::Discrete { n } => {
                // The high bits: xorshift's low ones are its weakest.
                OwnedAction::Discrete(((rng.next_u64() >> 32) % u64::from((*n).max(1))) as u32)
            }
            Space::Box { low, high } => OwnedAction::Continuous(
                low.iter()
                    .zip(high)
                    .map(|(&lo, &hi)| {
                        if lo.is_finite() && hi.is_finite() {
                            lo + (hi - lo) * rng.uniform()
                        } else {
                            // max/min, not clamp: no panic on a malformed box.
                            rng.normal().max(lo).min(hi)
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// The action to take: `packet`'s (`None` before the agent has a packet: random),
    /// perturbed.
    pub fn act(&mut self, packet: Option<OwnedAction>) -> OwnedAction {
        let Some(action) = packet else {
            return self.random();
        };
        match (self.exploration, action) {
            (Exploration::Greedy, a) => a,
            (Exploration::EpsilonGreedy { epsilon }, a)
            | (Exploration::Gaussian { std: epsilon }, a @ OwnedAction::Discrete(_)) => {
                if self.rng.uniform() < epsilon {
                    self.random()
                } else {
                    a
                }
            }
            (Exploration::Gaussian { std }, OwnedAction::Continuous(mut v)) => {
                if let Space::Box { low, high } = &self.space {
                    for ((x, &lo), &hi) in v.iter_mut().zip(low).zip(high) {
                        let scale = if lo.is_finite() && hi.is_finite() {
                            (hi - lo) / 2.0
                        } else {
                            1.0
                        };
                        *x = (*x + std * scale * self.rng.normal()).max(lo).min(hi);
                    }
                }
                OwnedAction::Continuous(v)
            }
        }
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_greedy_strays_at_its_rate_and_random_covers_the_space() {
        let mut e = Explorer::new(
            Space::Discrete { n: 4 },
            Exploration::EpsilonGreedy { epsilon: 0.2 },
            3,
        );
        let n = 20_000;
        let mut changed = 0;
        let mut seen = [0usize; 4];
        for _ in 0..n {
            let OwnedAction::Discrete(a) = e.act(Some(OwnedAction::Discrete(2))) else {
                panic!("discrete space, continuous action");
            };
            changed += usize::from(a != 2);
            let OwnedAction::Discrete(r) = e.act(None) else {
                panic!("discrete space, continuous action");
            };
            seen[r as usize] += 1;
        }
        // A random action equals the packet's one time in four: 0.2 · 3/4 = 15% change.
        let rate = changed as f64 / n as f64;
        assert!((rate - 0.15).abs() < 0.01, "changed {rate}");
        assert!(
            seen.iter()
                .all(|&c| (c as f64 / n as f64 - 0.25).abs() < 0.02)
        );
    }

    #[test]
    fn gaussian_noise_stays_in_the_box_and_centres_on_the_packet() {
        let space = Space::Box {
            low: vec![-2.0],
            high: vec![2.0],
        };
        let mut e = Explorer::new(space, Exploration::Gaussian { std: 0.1 }, 5);
        let n = 20_000;
        let mut sum = 0.0f64;
        let mut sq = 0.0f64;
        for _ in 0..n {
            let OwnedAction::Continuous(v) = e.act(Some(OwnedAction::Continuous(vec![0.5]))) else {
                panic!("box space, discrete action");
            };
            assert!((-2.0..=2.0).contains(&v[0]));
            sum += f64::from(v[0]);
            sq += f64::from(v[0] - 0.5).powi(2);
        }
        let mean = sum / n as f64;
        let std = (sq / n as f64).sqrt();
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        // A tenth of the half-range 2: 0.2.
        assert!((std - 0.2).abs() < 0.01, "std {std}");
        // At the bound the noise is clipped, never outside.
        let OwnedAction::Continuous(v) = e.act(Some(OwnedAction::Continuous(vec![2.0]))) else {
            panic!("box space, discrete action");
        };
        assert!(v[0] <= 2.0);
    }

    #[test]
    fn greedy_keeps_the_packet_and_seeds_repeat() {
        let space = Space::Discrete { n: 2 };
        let mut g = Explorer::new(space.clone(), Exploration::Greedy, 1);
        assert!(
            (0..100).all(|_| g.act(Some(OwnedAction::Discrete(1))) == OwnedAction::Discrete(1))
        );
        let draws = |seed| {
            let mut e = Explorer::new(space.clone(), Exploration::Greedy, seed);
            (0..32).map(|_| e.act(None)).collect::<Vec<_>>()
        };
        assert_eq!(draws(9), draws(9));
        assert_ne!(draws(9), draws(10));
    }
}
