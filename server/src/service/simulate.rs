//! Phantom-path simulations: validate, then fit (or load) the task's world model and drive
//! audited paths from real start states (`pipeline::simulate`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use plasma_protocol::{JobOutput, JobSpec, MAX_REQUEST_COUNT, SimulateRequest};

use super::{Result, Service, ServiceError, check_id, failure, load_experience};
use crate::error::ErrorCode;
use crate::jobs::{JobContext, Work};
use crate::pipeline;
use crate::records::{JobKind, JobRecord};

/// Longest horizon a simulation may ask for.
pub const MAX_HORIZON: usize = 1000;

/// Validates a simulation request and builds its work; returns it with how many paths it
/// drives. Run when the request arrives and again when a restart resumes the job.
pub async fn prepare(svc: &Arc<Service>, req: &SimulateRequest) -> Result<(Work, usize)> {
    check_id("agent_id", &req.agent_id)?;
    if req.num_trajectories == 0 || req.num_trajectories > MAX_REQUEST_COUNT {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRequest,
            format!("num_trajectories must be 1..={MAX_REQUEST_COUNT}"),
        ));
    }
    if req.horizon == Some(0) || req.horizon.is_some_and(|h| h > MAX_HORIZON) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRequest,
            format!("horizon must be 1..={MAX_HORIZON}"),
        ));
    }
    let task = svc.usable_task(&req.task_description).await?;
    let settings = svc.config.compute.clone();
    let params = pipeline::SimulateParams {
        paths: req.num_trajectories.min(settings.max_trajectories),
        horizon: req.horizon.unwrap_or(settings.simulate_horizon),
        audit: req.adversarial_audit,
    };
    let store = svc.store.clone();
    let max = svc.config.storage.max_task_transitions;
    let loaded = svc.world_model_loaded.clone();
    let paths = params.paths;
    let work: Work = Box::new(move |ctx: &JobContext| {
        let exp = load_experience(store.as_ref(), &task, max)?;
        let root = store.model_root(&task.name);
        let mut progress = ctx;
        let result =
            pipeline::simulate(&exp, &settings, &params, &root, &mut progress).map_err(failure)?;
        loaded.store(true, Ordering::Relaxed);
        Ok(JobOutput::Simulation(result))
    });
    Ok((work, paths))
}

/// Accepts a simulation: validated, stored as a queued job, run when a slot frees. Returns
/// the job and the number of paths it drives.
pub async fn start(svc: &Arc<Service>, req: SimulateRequest) -> Result<(JobRecord, usize)> {
    let (work, paths) = prepare(svc, &req).await?;
    let (agent, task) = (req.agent_id.clone(), req.task_description.clone());
    let (job, _) = svc
        .jobs
        .submit(
            JobKind::Simulation,
            &agent,
            &task,
            JobSpec::Simulate(req),
            work,
        )
        .await?;
    Ok((job, paths))
}
