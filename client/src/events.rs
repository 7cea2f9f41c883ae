//! Job events of one client over `/ws/{client_id}`: the stored events of its recent jobs
//! first (so a late subscriber sees outcomes), then live ones.

use futures_util::{SinkExt, Stream, StreamExt};
use plasma_protocol::{JobEvent, WsMessage, WsRequest};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{ClientError, Result};

/// Largest WebSocket message accepted (the server's events are a few KiB).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A connected event subscription.
#[derive(Debug)]
pub struct EventStream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl EventStream {
    /// Connects to `{base}/ws/{client_id}` (`http` → `ws`, `https` → `wss`).
    pub async fn connect(base: &str, client_id: &str, token: Option<&str>) -> Result<Self> {
        plasma_protocol::validate_identifier(client_id)
            .map_err(|e| ClientError::Invalid(format!("client id {client_id:?}: {e}")))?;
        let ws_base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(ClientError::Invalid(format!("server URL {base:?}")));
        };
        let mut request = format!("{ws_base}/ws/{client_id}")
            .into_client_request()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::Invalid(format!("token: {e}")))?;
            request.headers_mut().insert("authorization", value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                .await
                .map_err(|e| match e {
                    // Nothing reached the server: another one may be tried.
                    tokio_tungstenite::tungstenite::Error::Io(io) => ClientError::Connect {
                        url: base.to_owned(),
                        source: Box::new(io),
                    },
                    e => ClientError::transport("WebSocket", e),
                })?;
        Ok(EventStream { socket })
    }

    /// The next job event; `Ok(None)` when the server closed the connection. Other
    /// messages (pong, status, lagged notes) are skipped; a `lagged` note is logged.
    pub async fn next_event(&mut self) -> Result<Option<JobEvent>> {
        while let Some(msg) = self.socket.next().await {
            let msg = msg.map_err(|e| ClientError::transport("WebSocket", e))?;
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => return Ok(None),
                _ => continue,
            };
            match serde_json::from_str::<WsMessage>(text.as_str()) {
                Ok(WsMessage::JobEvent(ev)) => return Ok(Some(ev)),
                Ok(WsMessage::Lagged {
                    missed_events,
                    message,
                }) => {
                    tracing::warn!(missed_events, %message, "events were dropped");
                }
                Ok(WsMessage::Unknown) => {
                    // A message type of a newer server.
                    tracing::debug!("unknown WebSocket message skipped");
                }
                Ok(_) => {}
                // A known message that does not read, or a frame that is not JSON.
                Err(e) => return Err(ClientError::Decode(format!("WebSocket message: {e}"))),
            }
        }
        Ok(None)
    }

    /// Asks the server for a pong (keeps idle proxies from closing the connection).
    pub async fn ping(&mut self) -> Result<()> {
        self.socket
            .send(Message::Text(
                serde_json::to_string(&WsRequest::Ping)
                    .unwrap_or_default()
                    .into(),
            ))
            .await
            .map_err(|e| ClientError::transport("WebSocket", e))
    }

    /// The events as a [`Stream`], ending when the server closes the connection.
    pub fn into_stream(self) -> impl Stream<Item = Result<JobEvent>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut s = state?;
            match s.next_event().await {
                Ok(Some(ev)) => Some((Ok(ev), Some(s))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
