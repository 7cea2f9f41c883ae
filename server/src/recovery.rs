//! What a start does with the jobs a previous process left queued or running: jobs are
//! data (their request is stored with them), so they are queued again and run from their
//! start. A job found *running* was cut off by a crash (`kill -9`, power loss): its
//! attempt is counted, and after `jobs.max_attempts` attempts it fails with the reason
//! instead of running again. A job SIGTERM stopped was recorded queued (see
//! `Jobs::shutdown`) and does not use up an attempt. Compilations are resumed too: one is
//! deterministic given its job (`service::compile`), so running it again stores the same
//! packet, never a second. Jobs whose request no longer prepares (its task deleted, say)
//! read `interrupted`.

use std::sync::Arc;

use crate::AppState;
use crate::error::{ErrorCode, ErrorDetail};
use crate::jobs::Work;
use crate::records::{EventKind, JobEvent, JobRecord, JobStatus, now_secs};

/// What became of the unfinished jobs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Queued again.
    pub resumed: usize,
    /// Failed: out of attempts.
    pub failed: usize,
    /// Not resumable.
    pub interrupted: usize,
}

/// The job's work, rebuilt from its stored request.
async fn rebuild(state: &Arc<AppState>, job: &JobRecord) -> Result<Work, String> {
    state
        .service
        .work_for(job)
        .await
        .map_err(|e| format!("its request no longer prepares: {e}"))
}

/// Ends a job that will not run again, with an event saying why.
async fn end(
    state: &AppState,
    mut job: JobRecord,
    mut events: Vec<JobEvent>,
    status: JobStatus,
    error: Option<ErrorDetail>,
    message: String,
) {
    job.status = status;
    job.finished_at = Some(now_secs());
    job.error = error;
    job.last_seq += 1;
    events.push(JobEvent {
        seq: job.last_seq,
        job_id: job.id.clone(),
        job_kind: job.kind,
        agent_id: job.agent_id.clone(),
        event: match status {
            JobStatus::Failed => EventKind::Failed,
            _ => EventKind::Interrupted,
        },
        status,
        phase: job.phase.clone(),
        progress: job.progress,
        metrics: None,
        message: Some(message),
        timestamp: now_secs(),
    });
    let store = state.store.clone();
    let written =
        tokio::task::spawn_blocking(move || store.put_job(&job, &events).map(|_| job.id)).await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot record a job of the previous run"),
        Err(e) => tracing::error!(error = %e, "cannot record a job of the previous run"),
    }
}

/// Resumes, fails or interrupts every job the previous process left unfinished, oldest
/// first (so they queue in the order they were accepted).
pub async fn recover(state: &Arc<AppState>) -> Result<Recovered, crate::storage::StoreError> {
    let store = state.store.clone();
    let unfinished = tokio::task::spawn_blocking(move || store.unfinished_jobs())
        .await
        .map_err(|e| crate::storage::StoreError::Db(e.to_string()))??;
    let max_attempts = state.config.jobs.max_attempts;
    let mut out = Recovered::default();
    for (job, events) in unfinished {
        let crashed = job.status == JobStatus::Running;
        if crashed && job.attempt >= max_attempts {
            let message = format!(
                "the server stopped {} times while this job ran (jobs.max_attempts = {max_attempts})",
                job.attempt
            );
            tracing::warn!(job = %job.id, %message, "job failed");
            let error = ErrorDetail {
                code: ErrorCode::AttemptsExhausted.into(),
                message: message.clone(),
            };
            end(state, job, events, JobStatus::Failed, Some(error), message).await;
            out.failed += 1;
            continue;
        }
        match rebuild(state, &job).await {
            Ok(work) => {
                let message = if crashed {
                    format!(
                        "the server stopped while this job ran (attempt {} of {max_attempts}); queued again",
                        job.attempt
                    )
                } else {
                    "queued again after a restart".to_owned()
                };
                tracing::info!(job = %job.id, attempt = job.attempt, "job resumed");
                state.jobs.resume(job, events, message, work).await;
                out.resumed += 1;
            }
            Err(why) => {
                tracing::warn!(job = %job.id, %why, "job not resumed");
                end(
                    state,
                    job,
                    events,
                    JobStatus::Interrupted,
                    None,
                    format!("not resumed: {why}"),
                )
                .await;
                out.interrupted += 1;
            }
        }
    }
    Ok(out)
}
