//! The compact binary form of an [`ExperienceBatch`] (`Content-Type:
//! application/x-plasma-experience`), also the format of experience chunks on disk.
//!
//! Besides the batch's JSON form, this fixed little-endian layout is
//! about 3× smaller and needs no parsing of numbers:
//!
//! ```text
//! magic        4 bytes  "PXB1"
//! agent_id     u16 length + UTF-8 bytes
//! task_name    u16 length + UTF-8 bytes
//! obs_dim      u32
//! action_kind  u8       0 = discrete (one u32 per action), 1 = continuous
//! action_dim   u32      1 for discrete
//! count        u32      transitions that follow
//! per transition:
//!   obs        f32 × obs_dim
//!   action     u32 (discrete) | f32 × action_dim (continuous)
//!   reward     f64
//!   next_obs   f32 × obs_dim
//!   flags      u8       bit 0 terminated, bit 1 truncated, others zero
//! ```
//!
//! The decoder checks every length against the bytes present before allocating (no
//! allocation beyond the input's size) and never panics; the batch it returns still needs
//! [`ExperienceBatch::validate`] against its task.

use crate::{Action, ExperienceBatch, MAX_BATCH_TRANSITIONS, MAX_SPACE_DIM, Transition};
use thiserror::Error;

/// The media type of the binary form.
pub const CONTENT_TYPE: &str = "application/x-plasma-experience";

const MAGIC: &[u8; 4] = b"PXB1";

/// Why bytes are not a binary experience batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The bytes end early or carry extra bytes.
    #[error("binary experience: {0}")]
    Malformed(String),
    /// The batch cannot be written in this form (mixed action kinds or widths).
    #[error("cannot encode: {0}")]
    Unencodable(String),
}

fn malformed<T>(m: impl Into<String>) -> Result<T, WireError> {
    Err(WireError::Malformed(m.into()))
}

/// Encodes a batch. All actions must be of one kind and width, all observations of one
/// width.
pub fn encode(batch: &ExperienceBatch) -> Result<Vec<u8>, WireError> {
    let bad = |m: &str| Err(WireError::Unencodable(m.into()));
    let first = batch.transitions.first();
    let obs_dim = first.map_or(0, |t| t.obs.len());
    let (kind, action_dim) = match first.map(|t| &t.action) {
        None | Some(Action::Discrete(_)) => (0u8, 1usize),
        Some(Action::Continuous(v)) => (1u8, v.len()),
    };
    let mut out = Vec::with_capacity(32 + batch.transitions.len() * (8 * obs_dim + 16));
    out.extend_from_slice(MAGIC);
    for s in [&batch.agent_id, &batch.task_name] {
        let Ok(len) = u16::try_from(s.len()) else {
            return bad("identifier longer than 65535 bytes");
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&(obs_dim as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&(action_dim as u32).to_le_bytes());
    out.extend_from_slice(&(batch.transitions.len() as u32).to_le_bytes());
    for t in &batch.transitions {
        if t.obs.len() != obs_dim || t.next_obs.len() != obs_dim {
            return bad("observations of different widths");
        }
        for v in &t.obs {
            out.extend_from_slice(&v.to_le_bytes());
        }
        match (&t.action, kind) {
            (Action::Discrete(i), 0) => out.extend_from_slice(&i.to_le_bytes()),
            (Action::Continuous(v), 1) if v.len() == action_dim => {
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            _ => return bad("actions of different kinds or widths"),
        }
        out.extend_from_slice(&t.reward.to_le_bytes());
        for v in &t.next_obs {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(t.terminated) | (u8::from(t.truncated) << 1));
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return malformed("unexpected end of data");
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, WireError> {
        let raw = self.take(n * 4)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = self.u16()? as usize;
        match std::str::from_utf8(self.take(len)?) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => malformed("identifier is not UTF-8"),
        }
    }
}

/// Decodes a batch.
pub fn decode(bytes: &[u8]) -> Result<ExperienceBatch, WireError> {
    let mut r = Reader { bytes };
    if r.take(4)? != MAGIC {
        return malformed("bad magic (expected \"PXB1\")");
    }
    let agent_id = r.string()?;
    let task_name = r.string()?;
    let obs_dim = r.u32()? as usize;
    let kind = r.u8()?;
    let action_dim = r.u32()? as usize;
    let count = r.u32()? as usize;
    if obs_dim == 0 || obs_dim > MAX_SPACE_DIM {
        return malformed(format!("obs_dim {obs_dim} outside 1..={MAX_SPACE_DIM}"));
    }
    let action_bytes = match kind {
        0 if action_dim == 1 => 4,
        1 if (1..=MAX_SPACE_DIM).contains(&action_dim) => 4 * action_dim,
        _ => return malformed(format!("action kind {kind} with width {action_dim}")),
    };
    if count > MAX_BATCH_TRANSITIONS {
        return malformed(format!(
            "{count} transitions, the limit is {MAX_BATCH_TRANSITIONS}"
        ));
    }
    let row = 8 * obs_dim + action_bytes + 8 + 1;
    if r.bytes.len() != count * row {
        return malformed(format!(
            "{} bytes of transitions, expected {count} × {row}",
            r.bytes.len()
        ));
    }
    let mut transitions = Vec::with_capacity(count);
    for _ in 0..count {
        let obs = r.f32s(obs_dim)?;
        let action = if kind == 0 {
            Action::Discrete(r.u32()?)
        } else {
            Action::Continuous(r.f32s(action_dim)?)
        };
        let reward = f64::from_le_bytes(r.array()?);
        let next_obs = r.f32s(obs_dim)?;
        let flags = r.u8()?;
        if flags & !0b11 != 0 {
            return malformed(format!("unknown flag bits {flags:#04x}"));
        }
        transitions.push(Transition {
            obs,
            action,
            reward,
            next_obs,
            terminated: flags & 1 != 0,
            truncated: flags & 2 != 0,
        });
    }
    Ok(ExperienceBatch {
        agent_id,
        task_name,
        transitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(action: impl Fn(usize) -> Action) -> ExperienceBatch {
        ExperienceBatch {
            agent_id: "robot-1".into(),
            task_name: "CartPole-v1".into(),
            transitions: (0..5)
                .map(|i| Transition {
                    obs: vec![i as f32, 0.5, -0.25],
                    action: action(i),
                    reward: 1.0 - i as f64,
                    next_obs: vec![0.1, i as f32, 2.0],
                    terminated: i == 4,
                    truncated: i == 3,
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_both_action_kinds() {
        for b in [
            batch(|i| Action::Discrete(i as u32 % 2)),
            batch(|i| Action::Continuous(vec![i as f32 * 0.1, -1.0])),
        ] {
            let bytes = encode(&b).unwrap();
            assert_eq!(decode(&bytes).unwrap(), b);
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = encode(&batch(|i| Action::Discrete(i as u32))).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }

    #[test]
    fn mixed_actions_cannot_be_encoded() {
        let mut b = batch(|i| Action::Discrete(i as u32));
        b.transitions[1].action = Action::Continuous(vec![0.0]);
        assert!(encode(&b).is_err());
    }
}
