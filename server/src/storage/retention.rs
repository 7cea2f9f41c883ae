//! Which stored experience a job loads when a task holds more than it may use: every
//! uploading agent keeps an equal share of the budget, so one agent flooding a task cannot
//! push the others' data out.

use std::collections::BTreeMap;

use crate::records::ChunkRecord;

/// How many of each chunk's newest transitions to load, by chunk number (ascending), so
/// that at most `max` transitions are loaded in all.
///
/// The budget is split equally between the agents that uploaded to the task (max-min
/// fair: an agent with less than its share keeps all of it and the rest is split among the
/// others); each agent's share is filled with its newest chunks first.
pub fn retained(chunks: &[ChunkRecord], max: usize) -> Vec<(u64, usize)> {
    let mut by_agent: BTreeMap<&str, Vec<&ChunkRecord>> = BTreeMap::new();
    for c in chunks {
        by_agent.entry(c.agent_id.as_str()).or_default().push(c);
    }
    let totals: BTreeMap<&str, usize> = by_agent
        .iter()
        .map(|(a, cs)| (*a, cs.iter().map(|c| c.transitions as usize).sum()))
        .collect();

    // Max-min fair allocation of `max` over the agents' totals.
    let mut share: BTreeMap<&str, usize> = BTreeMap::new();
    let mut open: Vec<&str> = totals.keys().copied().collect();
    let mut left = max;
    while !open.is_empty() && left > 0 {
        let each = left / open.len();
        let (small, big): (Vec<&str>, Vec<&str>) = open.iter().partition(|a| totals[*a] <= each);
        if small.is_empty() {
            // Everyone wants more than an equal split: give it, the remainder to the first.
            let extra = left - each * big.len();
            for (i, a) in big.iter().enumerate() {
                share.insert(a, each + usize::from(i < extra));
            }
            break;
        }
        for a in &small {
            share.insert(a, totals[*a]);
            left -= totals[*a];
        }
        open = big;
    }

    let mut out = vec![];
    for (agent, mut cs) in by_agent {
        let mut want = share.get(agent).copied().unwrap_or(0);
        cs.sort_by_key(|c| std::cmp::Reverse(c.chunk));
        for c in cs {
            if want == 0 {
                break;
            }
            let take = (c.transitions as usize).min(want);
            want -= take;
            out.push((c.chunk, take));
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(chunk: u64, agent: &str, transitions: u64) -> ChunkRecord {
        ChunkRecord {
            task: "t".into(),
            chunk,
            agent_id: agent.into(),
            token: None,
            transitions,
            uploaded_at: 0.0,
        }
    }

    fn loaded(plan: &[(u64, usize)], chunks: &[ChunkRecord], agent: &str) -> usize {
        plan.iter()
            .filter(|(n, _)| chunks.iter().any(|c| c.chunk == *n && c.agent_id == agent))
            .map(|(_, take)| take)
            .sum()
    }

    #[test]
    fn under_the_budget_everything_is_loaded() {
        let chunks = [chunk(0, "a", 10), chunk(1, "b", 20)];
        assert_eq!(retained(&chunks, 100), vec![(0, 10), (1, 20)]);
    }

    #[test]
    fn a_flooding_agent_cannot_evict_the_others() {
        // Two honest agents with 300 transitions each, then a flood of 10,000 from one.
        let mut chunks = vec![chunk(0, "honest-1", 300), chunk(1, "honest-2", 300)];
        for i in 0..100 {
            chunks.push(chunk(2 + i, "flood", 100));
        }
        let plan = retained(&chunks, 1000);
        assert_eq!(plan.iter().map(|(_, t)| t).sum::<usize>(), 1000);
        assert_eq!(loaded(&plan, &chunks, "honest-1"), 300);
        assert_eq!(loaded(&plan, &chunks, "honest-2"), 300);
        assert_eq!(loaded(&plan, &chunks, "flood"), 400);
        // The flood's newest chunks are the ones kept.
        assert!(plan.iter().all(|(n, _)| *n < 2 || *n >= 98), "{plan:?}");
    }

    #[test]
    fn equal_shares_when_everyone_has_more() {
        let chunks = [chunk(0, "a", 500), chunk(1, "b", 500), chunk(2, "c", 500)];
        let plan = retained(&chunks, 100);
        assert_eq!(plan, vec![(0, 34), (1, 33), (2, 33)]);
    }
}
