//! NumPy's default random generator, bit for bit, so that `reset(Some(seed))` starts
//! every environment in exactly the state Gymnasium starts it in.
//!
//! Gymnasium seeds an environment with
//! `np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))` and draws initial
//! states with `Generator.uniform`. This module implements those three pieces as NumPy
//! does (`numpy/random/bit_generator.pyx` for `SeedSequence`,
//! `numpy/random/src/pcg64/pcg64.h` for PCG64, `distributions.c` for the uniform draw).
//! The expected values in the tests were produced by NumPy itself; the snippet that
//! produces them is in `scripts/rng_reference.py`.

/// Words in the entropy pool of a `SeedSequence` (NumPy's `DEFAULT_POOL_SIZE`).
const POOL_SIZE: usize = 4;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

/// NumPy's `SeedSequence` for a non-negative integer seed (no spawn key): hashes the seed
/// into a pool of four 32-bit words, from which generator states are drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut value = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    value = value.wrapping_mul(*hash_const);
    value ^ (value >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let result = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    result ^ (result >> XSHIFT)
}

impl SeedSequence {
    /// The sequence NumPy builds from `SeedSequence(seed)`.
    pub fn new(seed: u128) -> Self {
        // `_coerce_to_uint32_array`: little-endian 32-bit words, `[0]` for zero.
        let mut entropy = Vec::with_capacity(4);
        let mut n = seed;
        if n == 0 {
            entropy.push(0);
        }
        while n > 0 {
            entropy.push((n & 0xffff_ffff) as u32);
            n >>= 32;
        }

        // `mix_entropy`.
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            let word = entropy.get(i).copied().unwrap_or(0);
            *slot = hashmix(word, &mut hash_const);
        }
        for i_src in 0..POOL_SIZE {
            for i_dst in 0..POOL_SIZE {
                if i_src != i_dst {
                    let h = hashmix(pool[i_src], &mut hash_const);
                    pool[i_dst] = mix(pool[i_dst], h);
                }
            }
        }
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hashmix(word, &mut hash_const);
                *slot = mix(*slot, h);
            }
        }
        SeedSequence { pool }
    }

    /// The hashed entropy pool (NumPy's `SeedSequence.pool`).
    pub fn pool(&self) -> [u32; POOL_SIZE] {
        self.pool
    }

    /// `generate_state(n_words, np.uint32)`.
    pub fn generate_state_u32(&self, n_words: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n_words)
            .map(|i| {
                let mut value = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                value = value.wrapping_mul(hash_const);
                value ^ (value >> XSHIFT)
            })
            .collect()
    }

    /// `generate_state(n_words, np.uint64)`: pairs of 32-bit words, low word first.
    pub fn generate_state_u64(&self, n_words: usize) -> Vec<u64> {
        self.generate_state_u32(n_words * 2)
            .chunks_exact(2)
            .map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32))
            .collect()
    }
}

/// PCG's default 128-bit LCG multiplier.
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) + 4_865_540_595_714_422_341u128;

/// NumPy's `PCG64` bit generator: a 128-bit LCG with the XSL-RR output function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
}

impl Pcg64 {
    /// Seeds as `np.random.PCG64(seed_sequence)` does (`pcg64_set_seed`).
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        let words = seq.generate_state_u64(4);
        let initstate = (u128::from(words[0]) << 64) | u128::from(words[1]);
        let initseq = (u128::from(words[2]) << 64) | u128::from(words[3]);
        let mut rng = Pcg64 {
            state: 0,
            inc: (initseq << 1) | 1,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    /// The raw 128-bit `(state, increment)`, as NumPy's `bit_generator.state` shows them.
    pub fn raw_state(&self) -> (u128, u128) {
        (self.state, self.inc)
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next 64 random bits (`random_raw`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let xored = ((s >> 64) as u64) ^ (s as u64);
        xored.rotate_right((s >> 122) as u32)
    }

    /// A double in `[0, 1)` with 53 random bits (`next_double`).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// The generator Gymnasium gives each environment (`env.np_random`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpRandom {
    bits: Pcg64,
}

impl NpRandom {
    /// `np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))`, as in
    /// `gymnasium.utils.seeding.np_random(seed)`.
    pub fn from_seed(seed: u64) -> Self {
        NpRandom {
            bits: Pcg64::from_seed_sequence(&SeedSequence::new(u128::from(seed))),
        }
    }

    /// A generator seeded from operating-system entropy, as Gymnasium does when an
    /// environment is reset without a seed for the first time (NumPy draws 128 bits).
    pub fn from_entropy() -> Self {
        let mut bytes = [0u8; 16];
        let entropy = match getrandom::fill(&mut bytes) {
            Ok(()) => u128::from_le_bytes(bytes),
            Err(_) => fallback_entropy(),
        };
        NpRandom {
            bits: Pcg64::from_seed_sequence(&SeedSequence::new(entropy)),
        }
    }

    /// `Generator.random()`: a double in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        self.bits.next_f64()
    }

    /// `Generator.uniform(low, high)` for one value: `low + (high - low) * u`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let range = high - low;
        low + range * self.bits.next_f64()
    }

    /// `Generator.uniform(low, high, size=out.len())`: fills `out` element by element.
    pub fn uniform_into(&mut self, low: f64, high: f64, out: &mut [f64]) {
        for v in out {
            *v = self.uniform(low, high);
        }
    }

    /// The underlying bit generator.
    pub fn bit_generator(&self) -> &Pcg64 {
        &self.bits
    }
}

/// Entropy when the operating system offers none: std's randomly keyed hasher and the
/// clock. Only reached if `getrandom` fails.
fn fallback_entropy() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::time::{SystemTime, UNIX_EPOCH};

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(nanos);
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    (u128::from(a) << 64) | u128::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values: `scripts/rng_reference.py` (NumPy 2.4.6).

    #[test]
    fn seed_sequence_pool_and_state_match_numpy() {
        let cases: [(u128, [u32; 4], [u64; 4]); 4] = [
            (
                0,
                [0xfe40eb07, 0x4f363a36, 0x4eb2009d, 0xc89a7aa7],
                [
                    0xdb2cd7e7b0f478be,
                    0xabf4641a2c71ba49,
                    0x20c6ed6d9d7b8d41,
                    0x2c4099de223c39d4,
                ],
            ),
            (
                42,
                [0x631d3606, 0x7ae90ae, 0x6fc4be28, 0x2ced5c75],
                [
                    0x9f1e2e6dcd540ab7,
                    0xd57873dc79fb94b6,
                    0x7d282a1b64d420b7,
                    0x336579714692d5ff,
                ],
            ),
            (
                4_294_967_301,
                [0x73d34ef0, 0xda919992, 0x5c469880, 0x2789f14b],
                [
                    0xf9c15bd6e249d9ac,
                    0xb2021b4036320ed7,
                    0x9388b47fe6dcf739,
                    0x5eeba8d9ad6439e1,
                ],
            ),
            (
                u128::from(u64::MAX),
                [0xfaf3ecf4, 0xfa0f8930, 0xe9f89a67, 0xe23d1f9],
                [
                    0xaebca151928cad0d,
                    0x119c30448638dc7a,
                    0x1bbb155659e642a7,
                    0xa76b11e3e8c4a8f6,
                ],
            ),
        ];
        for (seed, pool, state) in cases {
            let seq = SeedSequence::new(seed);
            assert_eq!(seq.pool(), pool, "pool of {seed}");
            assert_eq!(seq.generate_state_u64(4), state, "state of {seed}");
        }
    }

    #[test]
    fn four_word_entropy_fills_the_pool() {
        // SeedSequence(2**127 + 7), the width of OS entropy.
        let seq = SeedSequence::new((1u128 << 127) + 7);
        assert_eq!(seq.pool(), [0xf7bab5f2, 0x6762b439, 0x47ca96fb, 0x25944f10]);
    }

    #[test]
    fn pcg64_state_and_raw_output_match_numpy() {
        let bits = Pcg64::from_seed_sequence(&SeedSequence::new(0));
        assert_eq!(
            bits.raw_state(),
            (
                0x1aa1b5345996452d09585eb7a69561e3,
                0x418ddadb3af71a82588133bc447873a9
            )
        );
        let mut bits = bits;
        assert_eq!(
            [bits.next_u64(), bits.next_u64(), bits.next_u64()],
            [0xa30febcfd9c2825f, 0x4510bdf882d9d721, 0x0a7d3da94ecde8b8]
        );
        let mut bits = Pcg64::from_seed_sequence(&SeedSequence::new(42));
        assert_eq!(
            [bits.next_u64(), bits.next_u64(), bits.next_u64()],
            [0xc621fbcd16d92688, 0x705a5661a791ffc1, 0xdbcd12c26eda1624]
        );
    }

    #[test]
    fn uniform_matches_numpy_bit_for_bit() {
        let cases: [(u64, [f64; 4], f64); 3] = [
            (
                0,
                [
                    0.013696168732145436,
                    -0.02302132862361297,
                    -0.045902647606380534,
                    -0.04834723644714709,
                ],
                0.8132702392002724,
            ),
            (
                123,
                [
                    0.018235186324814343,
                    -0.04461789811977773,
                    -0.027964012722738865,
                    -0.03156281893013303,
                ],
                0.17590590108503035,
            ),
            (
                u64::MAX,
                [
                    0.018002667896169305,
                    0.03453117585624743,
                    -0.049259691840074,
                    0.039456812643914735,
                ],
                0.12896523452474162,
            ),
        ];
        for (seed, uniform, random) in cases {
            let mut rng = NpRandom::from_seed(seed);
            let mut out = [0.0; 4];
            rng.uniform_into(-0.05, 0.05, &mut out);
            assert_eq!(out, uniform, "seed {seed}");
            assert_eq!(rng.random(), random, "seed {seed}");
        }
    }

    #[test]
    fn entropy_seeding_gives_distinct_streams() {
        let mut a = NpRandom::from_entropy();
        let mut b = NpRandom::from_entropy();
        assert_ne!(a.random(), b.random());
    }
}
