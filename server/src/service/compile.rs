//! Compilations: a complete training run's policy (or adapter) quantized, compressed and
//! signed into a packet (`pipeline::compile_base` / `compile_adapter`), stored
//! content-addressed. An adapter binds to its base run's base packet, compiled once.
//!
//! A compilation is deterministic given its job: the provenance's time is the job's
//! creation time, so a compilation cut off by a crash and run again produces the same
//! bytes, the same digest and so the same stored packet — never a second one.

use std::sync::Arc;

use plasma_packets::AuditStatus;
use plasma_packets::codec::Digest;
use plasma_packets::model::Provenance;
use plasma_protocol::{CompileJob, CompileRequest, JobOutput, JobSpec};
use plasma_world_model::BuiltPacket;
use plasma_world_model::audit::Verdict;

use super::{
    Result, Service, ServiceError, base_packet_key, blocking, check_id, failure, internal_failure,
    policy_key, storage_failure,
};
use crate::error::ErrorCode;
use crate::jobs::{JobContext, JobFailure, Work};
use crate::pipeline::{self, StoredPolicy};
use crate::records::{JobKind, JobRecord, JobStatus, PacketRecord, PolicyKind};
use crate::storage::Store;

/// Longest `target_device` accepted.
pub const MAX_TARGET_DEVICE_LEN: usize = 64;

/// A compilation's work and what it compiles.
pub struct PreparedCompile {
    /// The work.
    pub work: Work,
    /// The training run compiled.
    pub training_id: String,
    /// Its task.
    pub task: String,
}

/// The training run a compile request names: its id, a path ending in it
/// (`checkpoints/<id>`, `<id>.json`), or empty / `latest` for the agent's newest.
fn named_training(req: &CompileRequest) -> String {
    req.trained_lora_path
        .as_deref()
        .map(|p| p.trim_end_matches('/').rsplit('/').next().unwrap_or(""))
        .map(|p| p.strip_suffix(".json").unwrap_or(p))
        .unwrap_or("")
        .to_owned()
}

/// Validates a compile request, resolves its training run (complete, approved by the
/// auditor or forced) and builds the work. Run when the request arrives and again when a
/// restart resumes the job.
pub async fn prepare(svc: &Arc<Service>, spec: &CompileJob) -> Result<PreparedCompile> {
    let req = &spec.request;
    check_id("agent_id", &req.agent_id)?;
    // Characters, as the OpenAPI document's maxLength counts them (not bytes).
    let chars = req.target_device.chars().count();
    if chars == 0 || chars > MAX_TARGET_DEVICE_LEN {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRequest,
            format!("target_device must be 1 to {MAX_TARGET_DEVICE_LEN} characters"),
        ));
    }
    let name = spec
        .resolved_training
        .clone()
        .unwrap_or_else(|| named_training(req));
    let store = svc.store.clone();
    let agent = req.agent_id.clone();
    let (training, policy) = blocking(move || resolve(store.as_ref(), &agent, &name)).await?;
    let audit = policy.verdict.audit_status(req.force).ok_or_else(|| {
        ServiceError::conflict(
            ErrorCode::AuditRejected,
            format!(
                "the auditor rejected training run {}: {}; pass \"force\": true to deploy anyway",
                training.id,
                policy.verdict.reasons.join("; ")
            ),
        )
    })?;
    let compiler = Compiler {
        svc: svc.clone(),
        policy,
        audit,
        agent: req.agent_id.clone(),
        target_device: req.target_device.clone(),
        training_id: training.id.clone(),
    };
    let work: Work = Box::new(move |ctx: &JobContext| compiler.run(ctx));
    Ok(PreparedCompile {
        work,
        training_id: training.id,
        task: training.task,
    })
}

/// Compiles a training run and waits for the packet (compilations take milliseconds and do
/// not queue behind training).
pub async fn run(svc: &Arc<Service>, req: CompileRequest) -> Result<(JobRecord, PacketRecord)> {
    let mut spec = CompileJob {
        request: req,
        resolved_training: None,
    };
    let prepared = prepare(svc, &spec).await?;
    spec.resolved_training = Some(prepared.training_id.clone());
    let agent = spec.request.agent_id.clone();
    let (_, done) = svc
        .jobs
        .submit(
            JobKind::Compilation,
            &agent,
            &prepared.task,
            JobSpec::Compile(spec),
            prepared.work,
        )
        .await?;
    let job = done
        .await
        .map_err(|_| ServiceError::Internal("compilation job vanished".into()))?;
    match (&job.status, &job.result) {
        (JobStatus::Complete, Some(JobOutput::Compilation(rec))) => {
            let rec = rec.clone();
            Ok((job, rec))
        }
        (JobStatus::Failed, _) => {
            let e = job.error.clone().unwrap_or(crate::error::ErrorDetail {
                code: ErrorCode::Internal.into(),
                message: "compilation failed".into(),
            });
            Err(if e.kind() == ErrorCode::InvalidInput {
                ServiceError::invalid(ErrorCode::CompileFailed, e.message)
            } else {
                ServiceError::Internal(e.message)
            })
        }
        _ => Err(ServiceError::Unavailable(format!(
            "compilation {}",
            job.status.as_str()
        ))),
    }
}

/// The training run `name` (or the agent's newest complete one) and its stored policy.
fn resolve(store: &dyn Store, agent: &str, name: &str) -> Result<(JobRecord, StoredPolicy)> {
    let training = if name.is_empty() || name == "latest" {
        store
            .list_jobs(Some(agent), Some(JobKind::Training))?
            .into_iter()
            .find(|j| j.status == JobStatus::Complete)
            .ok_or_else(|| {
                ServiceError::not_found(
                    ErrorCode::UnknownTraining,
                    format!("agent {agent} has no complete training run"),
                )
            })?
    } else {
        store
            .get_job(name)?
            .filter(|j| j.kind == JobKind::Training)
            .ok_or_else(|| {
                ServiceError::not_found(
                    ErrorCode::UnknownTraining,
                    format!("no training run {name:?}"),
                )
            })?
    };
    if training.status != JobStatus::Complete {
        return Err(ServiceError::conflict(
            ErrorCode::TrainingNotComplete,
            format!(
                "training run {} is {}",
                training.id,
                training.status.as_str()
            ),
        ));
    }
    let policy = read_policy(store, &training.id)?
        .ok_or_else(|| ServiceError::Internal(format!("policy of {} missing", training.id)))?;
    Ok((training, policy))
}

fn read_policy(store: &dyn Store, training_id: &str) -> Result<Option<StoredPolicy>> {
    let Some(bytes) = store.get_blob(&policy_key(training_id))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ServiceError::Internal(format!("policy of {training_id}: {e}")))
}

/// Everything a compilation job needs, moved into its work.
struct Compiler {
    svc: Arc<Service>,
    policy: StoredPolicy,
    audit: AuditStatus,
    agent: String,
    target_device: String,
    training_id: String,
}

impl Compiler {
    fn run(&self, ctx: &JobContext) -> std::result::Result<JobOutput, JobFailure> {
        // The job's creation time, not the clock: a rerun builds the same bytes.
        let created_at = ctx.created_at();
        let store = self.svc.store.as_ref();
        ctx.progress("compile", 0.1, None);
        // The compiled run's own provenance, with the audit status the request allows.
        let mut prov = self.provenance(
            &self.agent,
            &self.training_id,
            &self.policy.verdict,
            created_at,
        );
        prov.audit = self.audit;
        let (built, kind, base_id) = match &self.policy.base_training {
            None => {
                let built = pipeline::compile_base(&self.policy, prov, self.signer(), self.level())
                    .map_err(failure)?;
                (built, PolicyKind::Base, None)
            }
            Some(base_training) => {
                let base_id = self.base_packet(base_training, created_at)?;
                let digest: Digest = base_id
                    .parse()
                    .map_err(|_| internal_failure(format!("bad base packet id {base_id}")))?;
                let built = pipeline::compile_adapter(
                    &self.policy,
                    digest,
                    prov,
                    self.signer(),
                    self.level(),
                )
                .map_err(failure)?;
                (built, PolicyKind::Adapter, Some(base_id))
            }
        };
        let rec = self.record(
            &built,
            kind,
            &self.agent,
            &self.training_id,
            base_id,
            self.audit,
            self.policy.verdict.summary(200),
            created_at,
        );
        store
            .put_packet(&rec, &built.bytes, true)
            .map_err(storage_failure)?;
        // The first base packet of a run is the one later adapters bind to: the packet
        // its agents already run.
        if kind == PolicyKind::Base
            && store
                .get_blob(&base_packet_key(&self.training_id))
                .map_err(storage_failure)?
                .is_none()
        {
            store
                .put_blob(
                    &base_packet_key(&self.training_id),
                    rec.packet_id.as_bytes(),
                )
                .map_err(storage_failure)?;
        }
        self.svc.metrics.packet_compiled();
        Ok(JobOutput::Compilation(rec))
    }

    /// The base packet an adapter of `base_training` binds to: the stored one, or compiled
    /// (once) now.
    fn base_packet(
        &self,
        base_training: &str,
        created_at: f64,
    ) -> std::result::Result<String, JobFailure> {
        let store = self.svc.store.as_ref();
        let existing = store
            .get_blob(&base_packet_key(base_training))
            .map_err(storage_failure)?
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|id| store.get_packet(id).ok().flatten().is_some());
        if let Some(id) = existing {
            return Ok(id);
        }
        let base = read_policy(store, base_training)
            .map_err(internal_failure)?
            .ok_or(JobFailure::Failed {
                code: ErrorCode::BaseMissing,
                message: format!("the base policy {base_training} is missing"),
            })?;
        let prov = self.provenance("", base_training, &base.verdict, created_at);
        let built = pipeline::compile_base(&base, prov.clone(), self.signer(), self.level())
            .map_err(failure)?;
        let rec = self.record(
            &built,
            PolicyKind::Base,
            "",
            base_training,
            None,
            prov.audit,
            prov.audit_summary.clone(),
            created_at,
        );
        store
            .put_packet(&rec, &built.bytes, false)
            .map_err(storage_failure)?;
        store
            .put_blob(&base_packet_key(base_training), rec.packet_id.as_bytes())
            .map_err(storage_failure)?;
        self.svc.metrics.packet_compiled();
        Ok(rec.packet_id)
    }

    fn signer(&self) -> &plasma_packets::signing::PacketSigner {
        &self.svc.signer
    }

    fn level(&self) -> i32 {
        self.svc.config.packets.compression_level
    }

    fn provenance(
        &self,
        agent_id: &str,
        training_run: &str,
        verdict: &Verdict,
        created_at: f64,
    ) -> Provenance {
        Provenance {
            task: self.policy.task.clone(),
            agent_id: agent_id.to_owned(),
            training_run: training_run.to_owned(),
            created_unix_ms: (created_at * 1000.0) as u64,
            audit: verdict.audit_status(true).unwrap_or(self.audit),
            audit_summary: verdict.summary(200),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        built: &BuiltPacket,
        kind: PolicyKind,
        agent_id: &str,
        training_run: &str,
        base: Option<String>,
        audit: AuditStatus,
        summary: String,
        created_at: f64,
    ) -> PacketRecord {
        PacketRecord {
            packet_id: built.digest.to_hex(),
            kind,
            agent_id: agent_id.to_owned(),
            task: self.policy.task.clone(),
            training_id: training_run.to_owned(),
            base_packet_id: base,
            size: built.bytes.len() as u64,
            target_device: self.target_device.clone(),
            quantization: self.svc.config.packets.quantization.clone(),
            compression_level: self.level(),
            audit,
            audit_summary: summary,
            signed_by: self.svc.signer.public_key().to_hex(),
            created_at,
            trained_on_deleted_data: false,
        }
    }
}
