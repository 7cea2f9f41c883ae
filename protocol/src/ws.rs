//! The messages of `/ws/{client_id}`, JSON text frames tagged by `type`.

use serde::{Deserialize, Serialize};

use crate::error_body::ErrorDetail;
use crate::jobs::JobEvent;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsRequest {
    /// Answered with [`WsMessage::Pong`].
    Ping,
    /// Answered with [`WsMessage::Status`].
    StatusUpdate,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Job events dominate the traffic; boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum WsMessage {
    /// A job event (replayed on connect, then live).
    JobEvent(JobEvent),
    /// The answer to a ping.
    Pong {
        /// Unix seconds.
        timestamp: f64,
    },
    /// The answer to a status request.
    Status {
        /// Simulations queued or running.
        active_simulations: usize,
        /// Trainings queued or running.
        active_trainings: usize,
        /// Jobs waiting for a compute slot.
        queue_depth: usize,
        /// Jobs computing.
        running_jobs: usize,
        /// Unix seconds.
        timestamp: f64,
    },
    /// Events were dropped for this slow connection.
    Lagged {
        /// How many.
        missed_events: u64,
        /// What to do.
        message: String,
    },
    /// A message the server could not take.
    Error {
        /// Code and message (`invalid_json`, `unknown_message_type`,
        /// `binary_not_supported`).
        error: ErrorDetail,
    },
    /// A message type this version does not know (a newer server's); never sent.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{EventKind, JobKind, JobStatus};

    #[test]
    fn messages_keep_their_wire_shape() {
        let ev = JobEvent {
            seq: 3,
            job_id: "train_1".into(),
            job_kind: JobKind::Training,
            agent_id: "robot-1".into(),
            event: EventKind::Progress,
            status: JobStatus::Running,
            phase: Some("distill".into()),
            progress: 0.5,
            metrics: None,
            message: None,
            timestamp: 1.0,
        };
        let json = serde_json::to_value(WsMessage::JobEvent(ev.clone())).unwrap();
        assert_eq!(json["type"], "job_event");
        assert_eq!(
            json["seq"], 3,
            "the event's fields sit beside the tag: {json}"
        );
        let back: WsMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, WsMessage::JobEvent(ev));
        let ping: WsRequest = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, WsRequest::Ping);
        assert_eq!(
            serde_json::to_string(&WsRequest::StatusUpdate).unwrap(),
            r#"{"type":"status_update"}"#
        );
        assert!(serde_json::from_str::<WsRequest>(r#"{"type":"nope"}"#).is_err());
        // A newer server's message type reads as unknown; a known one that does not fit
        // its type is an error.
        assert_eq!(
            serde_json::from_str::<WsMessage>(r#"{"type":"news","x":1}"#).unwrap(),
            WsMessage::Unknown
        );
        assert!(serde_json::from_str::<WsMessage>(r#"{"type":"job_event","seq":"x"}"#).is_err());
    }
}
