//! Prometheus metrics through the `metrics` facade and its Prometheus exporter. Each server
//! owns its recorder (no process-global one), so several servers in one process — the
//! tests — keep their own series.

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::records::{JobKind, JobStatus};

/// Upper bounds (seconds) of the request-duration histogram.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

const REQUESTS: &str = "plasma_http_requests_total";
const DURATION: &str = "plasma_http_request_duration_seconds";
const SUBMITTED: &str = "plasma_jobs_submitted_total";
const REJECTED: &str = "plasma_jobs_rejected_total";
const FINISHED: &str = "plasma_jobs_finished_total";
const TRANSITIONS: &str = "plasma_experience_transitions_total";
const REFUSED: &str = "plasma_experience_refused_total";
const COMPILED: &str = "plasma_packets_compiled_total";
const DOWNLOADS: &str = "plasma_packet_downloads_total";
const WEBSOCKETS: &str = "plasma_websocket_connections";
const QUEUED: &str = "plasma_jobs_queued";
const RUNNING: &str = "plasma_jobs_running";
const STORED: &str = "plasma_packets_stored";
const UPTIME: &str = "plasma_uptime_seconds";

/// The server's counters, gauges and histogram.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of series with their descriptions.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), &BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            // Only an empty bucket list is refused, and BUCKETS is not empty.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let m = Metrics { recorder, handle };
        m.with(|| {
            describe_counter!(REQUESTS, "HTTP requests answered.");
            describe_histogram!(DURATION, Unit::Seconds, "Time to answer HTTP requests.");
            describe_counter!(SUBMITTED, "Jobs accepted.");
            describe_counter!(REJECTED, "Jobs refused because the queue was full.");
            describe_counter!(FINISHED, "Jobs ended, by status.");
            describe_counter!(TRANSITIONS, "Transitions accepted since start.");
            describe_counter!(
                REFUSED,
                "Uploads of experience refused, by the answer's error code."
            );
            describe_counter!(COMPILED, "Packets compiled since start.");
            describe_counter!(DOWNLOADS, "Packet downloads since start.");
            describe_gauge!(WEBSOCKETS, "Open WebSocket connections.");
            describe_gauge!(QUEUED, "Jobs waiting for a compute slot.");
            describe_gauge!(RUNNING, "Jobs computing.");
            describe_gauge!(STORED, "Packets in storage.");
            describe_gauge!(UPTIME, "Seconds since start.");
            // Series that exist from the start (0 until something happens).
            counter!(TRANSITIONS).absolute(0);
            counter!(COMPILED).absolute(0);
            counter!(DOWNLOADS).absolute(0);
            gauge!(WEBSOCKETS).set(0.0);
        });
        m
    }

    fn with(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// Counts one answered request (`route` is the matched route pattern).
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        self.with(|| {
            counter!(REQUESTS, &labels).increment(1);
            histogram!(DURATION).record(seconds);
        });
    }

    /// A job was accepted.
    pub fn job_submitted(&self, kind: JobKind) {
        self.with(|| counter!(SUBMITTED, "kind" => kind.as_str()).increment(1));
    }

    /// A job was refused (queue full).
    pub fn job_rejected(&self, kind: JobKind) {
        self.with(|| counter!(REJECTED, "kind" => kind.as_str()).increment(1));
    }

    /// A job ended.
    pub fn job_finished(&self, kind: JobKind, status: JobStatus) {
        self.with(|| {
            counter!(FINISHED, "kind" => kind.as_str(), "status" => status.as_str()).increment(1)
        });
    }

    /// Transitions accepted.
    pub fn experience(&self, transitions: u64) {
        self.with(|| counter!(TRANSITIONS).increment(transitions));
    }

    /// An upload of experience was refused; `reason` is the answer's error code.
    pub fn experience_refused(&self, reason: crate::error::ErrorCode) {
        self.with(|| counter!(REFUSED, "reason" => reason.as_str()).increment(1));
    }

    /// A packet was compiled.
    pub fn packet_compiled(&self) {
        self.with(|| counter!(COMPILED).increment(1));
    }

    /// A packet was downloaded.
    pub fn packet_downloaded(&self) {
        self.with(|| counter!(DOWNLOADS).increment(1));
    }

    /// A WebSocket opened (`+1`) or closed (`-1`).
    pub fn ws(&self, delta: i64) {
        self.with(|| gauge!(WEBSOCKETS).increment(delta as f64));
    }

    /// The text exposition, with the gauges the caller measures.
    pub fn render(&self, queued: usize, running: usize, packets: u64, uptime: f64) -> String {
        self.with(|| {
            gauge!(QUEUED).set(queued as f64);
            gauge!(RUNNING).set(running as f64);
            gauge!(STORED).set(packets as f64);
            gauge!(UPTIME).set(uptime);
        });
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keep_their_names_and_labels_and_servers_keep_their_own() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.request("GET", "/health", 200, 0.002);
        a.job_submitted(JobKind::Simulation);
        a.experience_refused(crate::error::ErrorCode::RateLimited);
        let text = a.render(2, 1, 5, 1.5);
        for line in [
            "plasma_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
            "plasma_http_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "plasma_jobs_submitted_total{kind=\"simulation\"} 1",
            "plasma_experience_refused_total{reason=\"rate_limited\"} 1",
            "plasma_jobs_queued 2",
            "plasma_packets_stored 5",
            "plasma_packets_compiled_total 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let other = b.render(0, 0, 0, 0.0);
        assert!(!other.contains("plasma_http_requests_total{"), "{other}");
    }
}
