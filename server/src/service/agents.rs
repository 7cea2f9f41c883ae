//! The agents the server knows of: gathered from the experience they uploaded and the
//! deployments they report.

use plasma_protocol::{AgentSummary, Deployment, DeploymentReport};

use super::{Result, Service, ServiceError, blocking, check_id};
use crate::error::ErrorCode;
use crate::records::now_secs;

/// Every agent with stored experience or a reported deployment, ordered by identifier,
/// each with its newest packet.
pub async fn list(service: &Service) -> Result<Vec<AgentSummary>> {
    let store = service.store.clone();
    blocking(move || {
        let mut agents = AgentSummary::gather(&store.list_tasks()?, store.list_deployments()?);
        for agent in &mut agents {
            agent.latest_packet = store
                .latest_packet_for_agent(&agent.agent_id)?
                .map(|p| p.packet_id);
        }
        Ok(agents)
    })
    .await
}

/// Records what `agent_id` reports running, in place of its previous report — unless that
/// one took effect later (a retried or delayed report arriving after a newer one): then
/// the newer is kept and answered.
pub async fn report_deployment(
    service: &Service,
    agent_id: String,
    report: DeploymentReport,
) -> Result<Deployment> {
    check_id("agent_id", &agent_id)?;
    report
        .validate()
        .map_err(|e| ServiceError::invalid(ErrorCode::InvalidRequest, e))?;
    let deployment = Deployment {
        agent_id,
        report,
        reported_at: now_secs(),
    };
    let store = service.store.clone();
    blocking(move || {
        let newer = store.list_deployments()?.into_iter().find(|d| {
            d.agent_id == deployment.agent_id && d.report.since > deployment.report.since
        });
        if let Some(newer) = newer {
            return Ok(newer);
        }
        store.put_deployment(&deployment)?;
        Ok(deployment)
    })
    .await
}
