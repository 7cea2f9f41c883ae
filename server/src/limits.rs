//! Per-agent limits on what one agent may send: a request rate (governor's keyed GCRA, the
//! well-kept implementation of token-bucket limiting) and the transitions it may store in
//! one task. Both answer 429 with a stable code; the rate also with `Retry-After`.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::error::{ApiError, ErrorCode};
use crate::records::TaskRecord;

/// Agents remembered by the rate limiter before idle ones are forgotten.
const MAX_TRACKED_AGENTS: usize = 100_000;

/// The per-agent limits in force.
pub struct AgentLimits {
    rate: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    max_agent_task_transitions: Option<u64>,
}

impl AgentLimits {
    /// Limits from the configuration (0 turns one off).
    pub fn new(config: &LimitsConfig) -> Self {
        AgentLimits {
            rate: NonZeroU32::new(config.agent_requests_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
            max_agent_task_transitions: (config.max_agent_task_transitions > 0)
                .then_some(config.max_agent_task_transitions),
        }
    }

    /// Counts one request of `agent`; 429 `rate_limited` past its rate.
    pub fn request(&self, agent: &str) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        if rate.len() > MAX_TRACKED_AGENTS {
            rate.retain_recent();
        }
        rate.check_key(&agent.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::TooManyRequests {
                code: ErrorCode::RateLimited,
                message: format!(
                    "agent {agent:?} sends more than its rate of requests; retry in {:.1} s",
                    wait.as_secs_f64()
                ),
                retry_after: Some(wait.as_secs_f64().ceil() as u64),
            }
        })
    }

    /// Whether `agent` may add `adding` transitions to `task` (none stored yet: `None`);
    /// 429 `agent_quota_exceeded` otherwise. Waiting does not help (no `Retry-After`): an
    /// admin deletes old data (`DELETE /experience`) or raises the limit. Concurrent
    /// uploads of one agent can pass the limit by at most one batch each.
    pub fn store(
        &self,
        task: Option<&TaskRecord>,
        agent: &str,
        adding: u64,
    ) -> Result<(), ApiError> {
        let Some(limit) = self.max_agent_task_transitions else {
            return Ok(());
        };
        let stored = task
            .and_then(|t| t.agent_transitions.get(agent).copied())
            .unwrap_or(0);
        if stored + adding > limit {
            return Err(ApiError::TooManyRequests {
                code: ErrorCode::AgentQuotaExceeded,
                message: format!(
                    "agent {agent:?} stores {stored} transitions in this task; {adding} more would pass its limit of {limit}"
                ),
                retry_after: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_refuses_past_its_burst_with_a_wait() {
        let limits = AgentLimits::new(&LimitsConfig {
            max_agent_task_transitions: 0,
            agent_requests_per_minute: 3,
        });
        for _ in 0..3 {
            limits.request("a").unwrap();
        }
        match limits.request("a") {
            Err(ApiError::TooManyRequests {
                code: ErrorCode::RateLimited,
                retry_after: Some(s),
                ..
            }) => assert!((1..=20).contains(&s), "{s}"),
            other => panic!("{other:?}"),
        }
        // Another agent has its own budget.
        limits.request("b").unwrap();
    }

    #[test]
    fn the_quota_counts_what_the_agent_stores() {
        let limits = AgentLimits::new(&LimitsConfig {
            max_agent_task_transitions: 100,
            agent_requests_per_minute: 0,
        });
        let mut task: TaskRecord = serde_json::from_value(serde_json::json!({
            "name": "T-v0", "builtin": false, "transitions": 90, "chunks": 1, "agents": ["a"],
            "base_training": null, "created_at": 0.0, "updated_at": 0.0,
            "spec": {"name": "T-v0", "observation_space": {"type": "box", "low": [-1.0], "high": [1.0]},
                     "action_space": {"type": "discrete", "n": 2}, "max_episode_steps": null}
        }))
        .unwrap();
        task.agent_transitions.insert("a".into(), 90);
        limits.store(Some(&task), "a", 10).unwrap();
        assert!(matches!(
            limits.store(Some(&task), "a", 11),
            Err(ApiError::TooManyRequests {
                code: ErrorCode::AgentQuotaExceeded,
                retry_after: None,
                ..
            })
        ));
        limits.store(Some(&task), "b", 100).unwrap();
        limits.store(None, "a", 100).unwrap();
    }
}
