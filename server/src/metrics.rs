//! Prometheus metrics in the text exposition format, kept with atomics and small maps
//! (no metrics crate: a dozen series do not need one).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::records::{JobKind, JobStatus};

/// Upper bounds (seconds) of the request-duration histogram.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The server's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: Mutex<Histogram>,
    jobs_submitted: Mutex<BTreeMap<&'static str, u64>>,
    jobs_rejected: Mutex<BTreeMap<&'static str, u64>>,
    jobs_finished: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    experience_transitions: AtomicU64,
    experience_refused: Mutex<BTreeMap<&'static str, u64>>,
    packets_compiled: AtomicU64,
    packet_downloads: AtomicU64,
    ws_connections: AtomicI64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

impl Metrics {
    /// Counts one answered request (`route` is the matched route pattern).
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        bump(
            &self.requests,
            (method.to_owned(), route.to_owned(), status),
        );
        if let Ok(mut h) = self.durations.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// A job was accepted.
    pub fn job_submitted(&self, kind: JobKind) {
        bump(&self.jobs_submitted, kind.as_str());
    }

    /// A job was refused (queue full).
    pub fn job_rejected(&self, kind: JobKind) {
        bump(&self.jobs_rejected, kind.as_str());
    }

    /// A job ended.
    pub fn job_finished(&self, kind: JobKind, status: JobStatus) {
        bump(&self.jobs_finished, (kind.as_str(), status.as_str()));
    }

    /// Transitions accepted.
    pub fn experience(&self, transitions: u64) {
        self.experience_transitions
            .fetch_add(transitions, Ordering::Relaxed);
    }

    /// An upload of experience was refused; `reason` is the answer's error code.
    pub fn experience_refused(&self, reason: crate::error::ErrorCode) {
        bump(&self.experience_refused, reason.as_str());
    }

    /// A packet was compiled.
    pub fn packet_compiled(&self) {
        self.packets_compiled.fetch_add(1, Ordering::Relaxed);
    }

    /// A packet was downloaded.
    pub fn packet_downloaded(&self) {
        self.packet_downloads.fetch_add(1, Ordering::Relaxed);
    }

    /// A WebSocket opened (`+1`) or closed (`-1`).
    pub fn ws(&self, delta: i64) {
        self.ws_connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// The text exposition, with the gauges the caller measures.
    pub fn render(&self, queued: usize, running: usize, packets: u64, uptime: f64) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "# HELP plasma_http_requests_total HTTP requests answered.\n# TYPE plasma_http_requests_total counter"
        );
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    w,
                    "plasma_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    route.replace('"', "'")
                );
            }
        }
        let _ = writeln!(
            w,
            "# HELP plasma_http_request_duration_seconds Time to answer HTTP requests.\n# TYPE plasma_http_request_duration_seconds histogram"
        );
        if let Ok(h) = self.durations.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "plasma_http_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                w,
                "plasma_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\nplasma_http_request_duration_seconds_sum {}\nplasma_http_request_duration_seconds_count {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            w,
            "# HELP plasma_jobs_submitted_total Jobs accepted.\n# TYPE plasma_jobs_submitted_total counter"
        );
        if let Ok(m) = self.jobs_submitted.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(w, "plasma_jobs_submitted_total{{kind=\"{kind}\"}} {n}");
            }
        }
        let _ = writeln!(
            w,
            "# HELP plasma_jobs_rejected_total Jobs refused because the queue was full.\n# TYPE plasma_jobs_rejected_total counter"
        );
        if let Ok(m) = self.jobs_rejected.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(w, "plasma_jobs_rejected_total{{kind=\"{kind}\"}} {n}");
            }
        }
        let _ = writeln!(
            w,
            "# HELP plasma_experience_refused_total Uploads of experience refused, by the answer's error code.\n# TYPE plasma_experience_refused_total counter"
        );
        if let Ok(m) = self.experience_refused.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    w,
                    "plasma_experience_refused_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            w,
            "# HELP plasma_jobs_finished_total Jobs ended, by status.\n# TYPE plasma_jobs_finished_total counter"
        );
        if let Ok(m) = self.jobs_finished.lock() {
            for ((kind, status), n) in m.iter() {
                let _ = writeln!(
                    w,
                    "plasma_jobs_finished_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let gauges: [(&str, &str, &str, f64); 7] = [
            (
                "plasma_jobs_queued",
                "gauge",
                "Jobs waiting for a compute slot.",
                queued as f64,
            ),
            (
                "plasma_jobs_running",
                "gauge",
                "Jobs computing.",
                running as f64,
            ),
            (
                "plasma_packets_stored",
                "gauge",
                "Packets in storage.",
                packets as f64,
            ),
            (
                "plasma_websocket_connections",
                "gauge",
                "Open WebSocket connections.",
                self.ws_connections.load(Ordering::Relaxed) as f64,
            ),
            (
                "plasma_experience_transitions_total",
                "counter",
                "Transitions accepted since start.",
                self.experience_transitions.load(Ordering::Relaxed) as f64,
            ),
            (
                "plasma_packet_downloads_total",
                "counter",
                "Packet downloads since start.",
                self.packet_downloads.load(Ordering::Relaxed) as f64,
            ),
            (
                "plasma_uptime_seconds",
                "gauge",
                "Seconds since start.",
                uptime,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                w,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            w,
            "# HELP plasma_packets_compiled_total Packets compiled since start.\n# TYPE plasma_packets_compiled_total counter\nplasma_packets_compiled_total {}",
            self.packets_compiled.load(Ordering::Relaxed)
        );
        out
    }
}
