//! `/ws/{client_id}`: a client's job events, live.
//!
//! On connect the server replays the stored events of the client's most recent jobs (so a
//! late subscriber still sees outcomes), then pushes new events as they happen, each once
//! (`(job_id, seq)` is never sent twice on one connection). The client may send
//! `{"type": "ping"}` (answered `{"type": "pong", "timestamp"}`) and `{"type":
//! "status_update"}` (answered `{"type": "status", "active_simulations", "timestamp", …}`).
//! A shutting-down server closes the socket with code 1001.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::error::{ApiError, ErrorCode, ErrorDetail};
use crate::records::{JobEvent, JobKind, now_secs};
use plasma_protocol::{WsMessage, WsRequest};

/// Jobs whose stored events are replayed on connect.
const REPLAY_JOBS: usize = 20;

/// Upgrades to the event stream of `client_id`.
pub async fn ws_handler(
    State(st): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    plasma_protocol::validate_identifier(&client_id).map_err(|e| {
        ApiError::unprocessable(ErrorCode::InvalidIdentifier, format!("client_id: {e}"))
    })?;
    Ok(ws
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| session(st, client_id, socket)))
}

fn text(message: &WsMessage) -> Message {
    Message::Text(serde_json::to_string(message).unwrap_or_default().into())
}

fn event_message(ev: &JobEvent) -> Message {
    text(&WsMessage::JobEvent(ev.clone()))
}

fn error(code: &str, message: String) -> WsMessage {
    WsMessage::Error {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
        },
    }
}

async fn replay(st: &AppState, client_id: &str) -> Vec<JobEvent> {
    let store = st.store.clone();
    let client = client_id.to_owned();
    let stored = tokio::task::spawn_blocking(move || {
        let jobs = store.list_jobs(Some(&client), None)?;
        let mut out = vec![];
        for job in jobs.into_iter().take(REPLAY_JOBS).rev() {
            out.push((job.id.clone(), store.job_events(&job.id)?));
        }
        Ok::<_, crate::storage::StoreError>(out)
    })
    .await;
    let mut events = vec![];
    if let Ok(Ok(jobs)) = stored {
        for (id, stored_events) in jobs {
            // A live job's in-memory events are the newest.
            let evs = st
                .jobs
                .live_job(&id)
                .map(|(_, e)| e)
                .unwrap_or(stored_events);
            events.extend(evs);
        }
    }
    events
}

fn answer(st: &AppState, text: &str) -> WsMessage {
    match serde_json::from_str::<WsRequest>(text) {
        Ok(WsRequest::Ping) => WsMessage::Pong {
            timestamp: now_secs(),
        },
        Ok(WsRequest::StatusUpdate) => WsMessage::Status {
            active_simulations: st.jobs.active_of(JobKind::Simulation),
            active_trainings: st.jobs.active_of(JobKind::Training),
            queue_depth: st.jobs.queued(),
            running_jobs: st.jobs.running(),
            timestamp: now_secs(),
        },
        // Well-formed JSON of an unknown `type`, or not JSON at all.
        Err(_) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => error(
                "unknown_message_type",
                format!(
                    "unknown message type {:?}; send \"ping\" or \"status_update\"",
                    v.get("type").and_then(serde_json::Value::as_str)
                ),
            ),
            Err(_) => error("invalid_json", "messages must be JSON objects".into()),
        },
    }
}

async fn session(st: Arc<AppState>, client_id: String, mut socket: WebSocket) {
    st.metrics.ws(1);
    // Subscribe before replaying, so nothing falls between the two.
    let mut events = st.jobs.subscribe();
    let mut shutdown = st.shutdown.subscribe();
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut ok = true;
    for ev in replay(&st, &client_id).await {
        let last = sent.entry(ev.job_id.clone()).or_insert(0);
        if ev.seq > *last {
            *last = ev.seq;
            if socket.send(event_message(&ev)).await.is_err() {
                ok = false;
                break;
            }
        }
    }
    // `ok` is false when the replay failed.
    if ok {
        loop {
            tokio::select! {
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let reply = answer(&st, text.as_str());
                        if socket.send(self::text(&reply)).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = error("binary_not_supported", "send JSON text messages".into());
                        if socket.send(self::text(&reply)).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {} // ping / pong frames: answered by the library
                },
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.agent_id != client_id {
                            continue;
                        }
                        let last = sent.entry(ev.job_id.clone()).or_insert(0);
                        if ev.seq <= *last {
                            continue;
                        }
                        *last = ev.seq;
                        if socket.send(event_message(&ev)).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let note = WsMessage::Lagged {
                            missed_events: n,
                            message: "events were dropped for this slow connection; poll GET /jobs/{id} for the current state".into(),
                        };
                        if socket.send(text(&note)).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = shutdown.changed() => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1001,
                            reason: "server shutting down".into(),
                        })))
                        .await;
                    break;
                }
            }
        }
    }
    st.metrics.ws(-1);
}
