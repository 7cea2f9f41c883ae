//! The job runner: bounded concurrency and a bounded queue, compute on blocking threads,
//! cancellation, sequence-numbered events persisted with the job and broadcast to
//! WebSocket subscribers.
//!
//! Persistence runs on one writer thread per runner, off the async runtime and outside
//! every lock: an event is queued for it under its job's lock (so a job's events are
//! written in order) and written after; subscribers receive it once it is durable. A
//! job's acceptance and its end are awaited until durable, so a 202 or a result is never
//! answered for a job that a crash could lose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use plasma_protocol::reports::{AuditReport, PhaseMetrics};
use plasma_protocol::{JobOutput, JobSpec};
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::error::{ErrorCode, ErrorDetail};
use crate::metrics::Metrics;
use crate::records::{EventKind, JobEvent, JobKind, JobRecord, JobStatus, now_secs};
use crate::service::ServiceError;
use crate::storage::Store;

/// How a job's work ended other than with a result.
#[derive(Debug)]
pub enum JobFailure {
    /// It saw its cancellation.
    Cancelled,
    /// It failed; `code` is stable (`insufficient_data`, `compute_failed`, …).
    Failed {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
}

/// The work of a job, run on a blocking thread.
pub type Work = Box<dyn FnOnce(&JobContext) -> Result<JobOutput, JobFailure> + Send + 'static>;

struct LiveJob {
    record: JobRecord,
    events: Vec<JobEvent>,
    last_progress: Option<Instant>,
    /// A change of status queued for the writer but not yet on disk, and the status
    /// readers still see meanwhile: `queued` while its start is pending, `running` while
    /// its end is — so that nobody observes a state that a crash would take back, or a
    /// result that another reader (the compiler, reading storage) cannot find yet.
    shown_until_durable: Option<JobStatus>,
}

struct Live {
    state: Mutex<LiveJob>,
    cancel: AtomicBool,
}

/// One write for the writer thread: a job's new state and one new event (`dropped`: an
/// old event to delete, the history being bounded); `done` is told once it is durable (or
/// failed).
struct Write {
    job: JobRecord,
    event: JobEvent,
    dropped: Option<u64>,
    /// A state change (start or end) that readers are kept from seeing until it is
    /// durable: the writer shows it before it broadcasts the event, so that whoever hears
    /// the event reads the state it announces.
    reveals: Option<Arc<Live>>,
    done: oneshot::Sender<()>,
}

/// Writes jobs and events in the order they were queued, then broadcasts each event.
fn writer(
    store: Arc<dyn Store>,
    events: broadcast::Sender<Arc<JobEvent>>,
    writes: mpsc::Receiver<Write>,
) {
    for w in writes {
        if let Err(e) = store.append_job_event(&w.job, &w.event, w.dropped) {
            tracing::error!(job = %w.job.id, error = %e, "cannot persist job");
        }
        if let Some(live) = &w.reveals
            && let Ok(mut s) = live.state.lock()
        {
            s.shown_until_durable = None;
        }
        let _ = events.send(Arc::new(w.event));
        let _ = w.done.send(());
    }
}

/// Shared state of the runner.
pub struct Jobs {
    /// `None` once closed.
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    events: broadcast::Sender<Arc<JobEvent>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    in_flight: AtomicUsize,
    running: AtomicUsize,
    live: Mutex<HashMap<String, Arc<Live>>>,
    max_events: usize,
    shutting_down: AtomicBool,
    metrics: Arc<Metrics>,
}

/// What a job's work sees: progress reporting and its cancellation flag.
pub struct JobContext {
    jobs: Arc<Jobs>,
    live: Arc<Live>,
}

/// A fresh job id with a kind prefix.
pub fn new_id(kind: JobKind) -> String {
    let mut b = [0u8; 8];
    // A failing OS generator is improbable; fall back to the clock.
    if getrandom::fill(&mut b).is_err() {
        b = (now_secs().to_bits()).to_le_bytes();
    }
    let prefix = match kind {
        JobKind::Simulation => "sim",
        JobKind::Training => "train",
        JobKind::Compilation => "compile",
    };
    format!("{prefix}_{}", hex::encode(b))
}

impl Jobs {
    /// A runner with `max_concurrent` compute slots and room for `queue` waiting jobs; its
    /// writer thread ends when the runner is dropped.
    pub fn new(
        store: Arc<dyn Store>,
        max_concurrent: usize,
        queue: usize,
        max_events: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Jobs>> {
        let (events, _) = broadcast::channel(1024);
        let (writes, pending) = mpsc::channel();
        let w_events = events.clone();
        let handle = std::thread::Builder::new()
            .name("plasma-job-writer".into())
            .spawn(move || writer(store, w_events, pending))?;
        Ok(Arc::new(Jobs {
            writes: Mutex::new(Some(writes)),
            writer: Mutex::new(Some(handle)),
            events,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            capacity: max_concurrent + queue,
            in_flight: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            live: Mutex::new(HashMap::new()),
            max_events,
            shutting_down: AtomicBool::new(false),
            metrics,
        }))
    }

    /// Writes what is queued, then stops the writer thread (and so releases its hold on
    /// the store): the last step of a shutdown. Later events are not recorded.
    pub async fn close(&self) {
        let sender = self.writes.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    fn send(&self, write: Write) -> bool {
        self.writes
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|w| w.send(write).is_ok()))
            .unwrap_or(false)
    }

    /// A receiver of every job event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.events.subscribe()
    }

    /// Jobs waiting for a slot.
    pub fn queued(&self) -> usize {
        self.in_flight
            .load(Ordering::SeqCst)
            .saturating_sub(self.running.load(Ordering::SeqCst))
    }

    /// Jobs computing.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Running jobs of one kind.
    pub fn active_of(&self, kind: JobKind) -> usize {
        self.live
            .lock()
            .map(|l| {
                l.values()
                    .filter(|j| {
                        j.state
                            .lock()
                            .map(|s| s.record.kind == kind && !s.record.status.is_terminal())
                            .unwrap_or(false)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// The live copy of a job (queued or running in this process), with its events.
    pub fn live_job(&self, id: &str) -> Option<(JobRecord, Vec<JobEvent>)> {
        let live = self.live.lock().ok()?.get(id).cloned()?;
        let s = live.state.lock().ok()?;
        let mut record = s.record.clone();
        if let Some(shown) = s.shown_until_durable {
            record.status = shown;
            record.result = None;
            record.error = None;
            record.finished_at = None;
        }
        Some((record, s.events.clone()))
    }

    /// Asks a queued or running job to stop; `false` if it is not live here.
    pub fn cancel(&self, id: &str) -> bool {
        match self.live.lock().ok().and_then(|l| l.get(id).cloned()) {
            // A job that has just ended may still be listed as live for a moment; its
            // record already says so, and cancelling it is then a conflict.
            Some(live)
                if !live
                    .state
                    .lock()
                    .is_ok_and(|s| s.record.status.is_terminal()) =>
            {
                live.cancel.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Stops accepting jobs and stops the live ones at their next safe point (their
    /// cancellation check), recording them queued again (`requeued`): the next start runs
    /// them from the beginning.
    pub fn shutdown(self: &Arc<Self>) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let live: Vec<Arc<Live>> = self
            .live
            .lock()
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default();
        for job in live {
            job.cancel.store(true, Ordering::SeqCst);
            self.emit(
                &job,
                EventKind::Requeued,
                Some(JobStatus::Queued),
                None,
                Some(0.0),
                None,
                Some("the server is shutting down; the job runs again when it restarts".into()),
            );
        }
    }

    /// Whether a live job is still running here (for shutdown's wait).
    pub fn live_count(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Accepts a job: stores it as queued (durably, before returning) and runs `work` when
    /// a compute slot frees (compilations run at once). 429 when the queue is full, 503
    /// while shutting down.
    pub async fn submit(
        self: &Arc<Self>,
        kind: JobKind,
        agent_id: &str,
        task: &str,
        request: JobSpec,
        work: Work,
    ) -> Result<(JobRecord, tokio::sync::oneshot::Receiver<JobRecord>), ServiceError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ServiceError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        // Compilation is light (quantize, sign, write a few KiB): it neither waits for a
        // compute slot nor counts against the queue, so a compile request is never stuck
        // behind a long training run.
        let light = kind == JobKind::Compilation;
        let taken = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (light || n < self.capacity).then_some(n + 1)
            });
        if taken.is_err() {
            self.metrics.job_rejected(kind);
            return Err(ServiceError::QueueFull(self.capacity));
        }
        let record = JobRecord {
            id: new_id(kind),
            kind,
            agent_id: agent_id.to_owned(),
            task: task.to_owned(),
            status: JobStatus::Queued,
            phase: None,
            progress: 0.0,
            request,
            result: None,
            error: None,
            last_seq: 0,
            attempt: 0,
            created_at: now_secs(),
            started_at: None,
            finished_at: None,
        };
        self.metrics.job_submitted(kind);
        Ok(self
            .enqueue(record, vec![], EventKind::Queued, None, work)
            .await)
    }

    /// Queues again a job of a previous run found queued or running at start-up, under
    /// its id and with its events, to run from its start.
    pub async fn resume(
        self: &Arc<Self>,
        mut record: JobRecord,
        events: Vec<JobEvent>,
        message: String,
        work: Work,
    ) -> JobRecord {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        record.status = JobStatus::Queued;
        record.phase = None;
        record.progress = 0.0;
        record.started_at = None;
        record.finished_at = None;
        self.enqueue(record, events, EventKind::Requeued, Some(message), work)
            .await
            .0
    }

    /// Registers a live job (its queue slot already taken), records `event` (durably) and
    /// runs `work` when a compute slot frees (compilations at once).
    async fn enqueue(
        self: &Arc<Self>,
        record: JobRecord,
        events: Vec<JobEvent>,
        event: EventKind,
        message: Option<String>,
        work: Work,
    ) -> (JobRecord, tokio::sync::oneshot::Receiver<JobRecord>) {
        let light = record.kind == JobKind::Compilation;
        let live = Arc::new(Live {
            state: Mutex::new(LiveJob {
                record: record.clone(),
                events,
                last_progress: None,
                shown_until_durable: None,
            }),
            cancel: AtomicBool::new(false),
        });
        if let Ok(mut l) = self.live.lock() {
            l.insert(record.id.clone(), live.clone());
        }
        let durable = self.emit(
            &live,
            event,
            Some(JobStatus::Queued),
            None,
            None,
            None,
            message,
        );
        if let Some(durable) = durable {
            let _ = durable.await;
        }
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let jobs = self.clone();
        tokio::spawn(async move {
            let permit = if light {
                Ok(None)
            } else {
                jobs.permits.clone().acquire_owned().await.map(Some)
            };
            let final_record = match permit {
                Ok(permit) => {
                    let r = jobs.clone().run(live.clone(), work).await;
                    drop(permit);
                    r
                }
                Err(_) => jobs.finish(&live, Err(JobFailure::Cancelled)).await,
            };
            jobs.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Ok(mut l) = jobs.live.lock()
                && let Ok(s) = live.state.lock()
            {
                l.remove(&s.record.id);
            }
            let _ = done_tx.send(final_record);
        });
        let snapshot = self.live_job(&record.id).map(|(r, _)| r).unwrap_or(record);
        (snapshot, done_rx)
    }

    async fn run(self: Arc<Self>, live: Arc<Live>, work: Work) -> JobRecord {
        if live.cancel.load(Ordering::SeqCst) {
            return self.finish(&live, Err(JobFailure::Cancelled)).await;
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut s) = live.state.lock() {
            s.record.started_at = Some(now_secs());
            s.record.attempt += 1;
            s.shown_until_durable = Some(JobStatus::Queued);
        }
        // Durable before the work starts (and before anyone sees it running): a crash
        // from here on counts as an attempt.
        let started = self.emit(
            &live,
            EventKind::Started,
            Some(JobStatus::Running),
            None,
            None,
            None,
            None,
        );
        if let Some(started) = started {
            let _ = started.await;
        }
        if let Ok(mut s) = live.state.lock() {
            s.shown_until_durable = None;
        }
        let ctx = JobContext {
            jobs: self.clone(),
            live: live.clone(),
        };
        let outcome = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
        })
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let outcome = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => Err(JobFailure::Failed {
                code: ErrorCode::Internal,
                message: "the job's computation panicked (logged)".into(),
            }),
        };
        let outcome = match outcome {
            Err(JobFailure::Cancelled) | Ok(_) if live.cancel.load(Ordering::SeqCst) => {
                Err(JobFailure::Cancelled)
            }
            other => other,
        };
        self.finish(&live, outcome).await
    }

    /// Records how a job ended (durably, before returning).
    async fn finish(&self, live: &Arc<Live>, outcome: Result<JobOutput, JobFailure>) -> JobRecord {
        let stopping = self.shutting_down.load(Ordering::SeqCst);
        if stopping && matches!(outcome, Err(JobFailure::Cancelled)) {
            // Stopped by the shutdown: `shutdown` recorded it queued again (or
            // interrupted); the next start takes it from there.
            let record = live
                .state
                .lock()
                .map(|s| s.record.clone())
                .unwrap_or_else(|p| p.into_inner().record.clone());
            return record;
        }
        let (kind, status, message) = match &outcome {
            Ok(_) => (EventKind::Completed, JobStatus::Complete, None),
            Err(JobFailure::Cancelled) => (EventKind::Cancelled, JobStatus::Cancelled, None),
            Err(JobFailure::Failed { message, .. }) => {
                (EventKind::Failed, JobStatus::Failed, Some(message.clone()))
            }
        };
        if let Ok(mut s) = live.state.lock() {
            s.shown_until_durable = Some(s.record.status);
            s.record.finished_at = Some(now_secs());
            match outcome {
                Ok(result) => {
                    s.record.result = Some(result);
                    s.record.progress = 1.0;
                }
                Err(JobFailure::Failed { code, message }) => {
                    tracing::warn!(job = %s.record.id, code = code.as_str(), %message, "job failed");
                    s.record.error = Some(ErrorDetail {
                        code: code.into(),
                        message,
                    });
                }
                Err(JobFailure::Cancelled) => {}
            }
        }
        let progress = live.state.lock().map(|s| s.record.progress).ok();
        if let Some(durable) = self.emit(live, kind, Some(status), None, progress, None, message) {
            let _ = durable.await;
        }
        if let Ok(mut s) = live.state.lock() {
            s.shown_until_durable = None;
        }
        let record = live
            .state
            .lock()
            .map(|s| s.record.clone())
            .unwrap_or_else(|p| p.into_inner().record.clone());
        self.metrics.job_finished(record.kind, status);
        record
    }

    /// Appends an event to a live job and queues the job's new state and the event for the
    /// writer (which broadcasts the event once written); the receiver is told when it is
    /// durable (`None`: nothing was written, the job having ended).
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        live: &Arc<Live>,
        event: EventKind,
        status: Option<JobStatus>,
        phase: Option<&str>,
        progress: Option<f64>,
        metrics: Option<PhaseMetrics>,
        message: Option<String>,
    ) -> Option<oneshot::Receiver<()>> {
        let Ok(mut s) = live.state.lock() else {
            return None;
        };
        if s.record.status.is_terminal() {
            return None; // e.g. cancelled, then finished by the worker
        }
        if let Some(st) = status {
            s.record.status = st;
        }
        if let Some(p) = phase {
            s.record.phase = Some(p.to_owned());
        }
        if let Some(p) = progress {
            s.record.progress = p.clamp(0.0, 1.0);
        }
        s.record.last_seq += 1;
        let ev = JobEvent {
            seq: s.record.last_seq,
            job_id: s.record.id.clone(),
            job_kind: s.record.kind,
            agent_id: s.record.agent_id.clone(),
            event,
            status: s.record.status,
            phase: s.record.phase.clone(),
            progress: s.record.progress,
            metrics,
            message,
            timestamp: now_secs(),
        };
        s.events.push(ev.clone());
        let mut dropped = None;
        if s.events.len() > self.max_events {
            // Keep the first event (queued) and the newest ones.
            dropped = Some(s.events.remove(1).seq);
        }
        // Queued under the job's lock, so that its events are written in order; written
        // by the writer thread, with no lock held.
        let (tx, rx) = oneshot::channel();
        let reveals = (status.is_some() && s.shown_until_durable.is_some()).then(|| live.clone());
        let write = Write {
            job: s.record.clone(),
            event: ev,
            dropped,
            reveals,
            done: tx,
        };
        let queued = self.send(write);
        drop(s);
        queued.then_some(rx)
    }
}

impl JobContext {
    /// The job's id.
    pub fn job_id(&self) -> String {
        self.live
            .state
            .lock()
            .map(|s| s.record.id.clone())
            .unwrap_or_default()
    }

    /// When the job was accepted (Unix seconds): fixed for the job, also when it runs again.
    pub fn created_at(&self) -> f64 {
        self.live
            .state
            .lock()
            .map(|s| s.record.created_at)
            .unwrap_or_default()
    }

    /// Whether the job was cancelled (or the server is stopping).
    pub fn cancelled(&self) -> bool {
        self.live.cancel.load(Ordering::SeqCst)
    }

    /// Reports progress; events closer than 200 ms in the same phase are coalesced.
    pub fn progress(&self, phase: &str, fraction: f64, metrics: Option<PhaseMetrics>) {
        if self.stopped_by_shutdown() {
            return; // recorded queued again: its late progress is not news
        }
        {
            let Ok(mut s) = self.live.state.lock() else {
                return;
            };
            let same_phase = s.record.phase.as_deref() == Some(phase);
            let recent = s
                .last_progress
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200));
            if same_phase && recent && fraction < 1.0 {
                s.record.progress = fraction.clamp(0.0, 1.0);
                return;
            }
            s.last_progress = Some(Instant::now());
        }
        self.jobs.emit(
            &self.live,
            EventKind::Progress,
            None,
            Some(phase),
            Some(fraction),
            metrics,
            None,
        );
    }

    fn stopped_by_shutdown(&self) -> bool {
        self.cancelled() && self.jobs.shutting_down.load(Ordering::SeqCst)
    }

    /// Reports the auditor's verdict.
    pub fn audit(&self, verdict: AuditReport) {
        if self.stopped_by_shutdown() {
            return;
        }
        self.jobs.emit(
            &self.live,
            EventKind::Audit,
            None,
            Some("audit"),
            None,
            Some(PhaseMetrics::Audit(verdict)),
            None,
        );
    }
}

impl crate::pipeline::Progress for &JobContext {
    fn report(&mut self, phase: &str, fraction: f64, metrics: Option<PhaseMetrics>) {
        JobContext::progress(self, phase, fraction, metrics);
    }

    fn audit(&mut self, verdict: AuditReport) {
        JobContext::audit(self, verdict);
    }

    fn cancelled(&self) -> bool {
        JobContext::cancelled(self)
    }
}
