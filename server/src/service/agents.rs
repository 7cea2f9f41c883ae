//! The agents the server knows of, gathered from the experience they uploaded.

use plasma_protocol::AgentSummary;

use super::{Result, Service, blocking};

/// Every agent with stored experience, ordered by identifier, each with its newest packet.
pub async fn list(service: &Service) -> Result<Vec<AgentSummary>> {
    let store = service.store.clone();
    blocking(move || {
        let mut agents = AgentSummary::from_tasks(&store.list_tasks()?);
        for agent in &mut agents {
            agent.latest_packet = store
                .latest_packet_for_agent(&agent.agent_id)?
                .map(|p| p.packet_id);
        }
        Ok(agents)
    })
    .await
}
