//! Packets: compile a training run (`POST /instruction-packet/compile`), download one,
//! read its metadata.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plasma_protocol::validate_identifier;

use super::{ApiJson, CompileRequest, CompileResponse, ErrorBody, blocking};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::records::PacketRecord;
use crate::service;
use crate::storage::Store;
use plasma_protocol::PacketListing;

/// Compiles a trained policy or adapter into a signed int8 packet.
#[utoipa::path(post, path = "/instruction-packet/compile", request_body = CompileRequest,
    responses((status = 400, body = ErrorBody), (status = 200, body = CompileResponse, links(
            ("Download" = (operation_id = "download", parameters(("id" = "$response.body#/packet_id")))),
            ("PacketMeta" = (operation_id = "packet_meta", parameters(("id" = "$response.body#/packet_id")))),
            ("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/compilation_id"))))
        )), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn compile(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<CompileRequest>,
) -> Result<Json<CompileResponse>, ApiError> {
    let agent = req.agent_id.clone();
    let (job, rec) = service::compile::run(&st.service, req).await?;
    Ok(Json(CompileResponse {
        status: "compiled".into(),
        download_url: format!("/instruction-packet/download/{}", rec.packet_id),
        base_download_url: rec
            .base_packet_id
            .as_ref()
            .map(|b| format!("/instruction-packet/download/{b}")),
        base_packet_id: rec.base_packet_id.clone(),
        packet_size: rec.size,
        kind: rec.kind,
        compilation_id: job.id,
        training_id: rec.training_id.clone(),
        message: format!(
            "compiled a signed int8 {} packet of {} bytes for {agent}",
            rec.kind.as_str(),
            rec.size,
        ),
        agent_id: agent,
        packet_id: rec.packet_id,
    }))
}

/// A packet by digest, or an agent's latest.
fn find_packet(store: &dyn Store, id: &str) -> Result<PacketRecord, ApiError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Some(p) = store.get_packet(id)? {
            return Ok(p);
        }
    } else if validate_identifier(id).is_ok()
        && let Some(p) = store.latest_packet_for_agent(id)?
    {
        return Ok(p);
    }
    Err(ApiError::not_found(
        ErrorCode::UnknownPacket,
        format!("no packet or agent with a packet named {id:?}"),
    ))
}

/// A packet's bytes, by packet id or agent id (that agent's latest packet).
#[utoipa::path(get, path = "/instruction-packet/download/{id}", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = st.store.clone();
    let (rec, bytes) = blocking(move || {
        let rec = find_packet(store.as_ref(), &id)?;
        let bytes = store
            .packet_bytes(&rec.packet_id)?
            .ok_or_else(|| ApiError::Internal(format!("packet file {} missing", rec.packet_id)))?;
        Ok((rec, bytes))
    })
    .await?;
    let etag = format!("\"{}\"", rec.packet_id);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    st.metrics.packet_downloaded();
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let pairs = [
        (header::ETAG.as_str(), etag),
        ("x-plasma-packet-id", rec.packet_id.clone()),
        ("x-plasma-packet-kind", rec.kind.as_str().to_owned()),
        (
            header::CONTENT_DISPOSITION.as_str(),
            format!("attachment; filename=\"{}.pkt\"", rec.packet_id),
        ),
    ];
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            HeaderValue::try_from(v),
        ) {
            h.insert(k, v);
        }
    }
    if let Some(base) = rec
        .base_packet_id
        .and_then(|b| HeaderValue::try_from(b).ok())
    {
        h.insert("x-plasma-base-packet-id", base);
    }
    Ok(response)
}

/// A packet's metadata, by packet id or agent id.
#[utoipa::path(get, path = "/instruction-packet/{id}", params(("id" = String, Path)),
    responses((status = 200, body = PacketRecord), (status = 404, body = ErrorBody)))]
pub async fn packet_meta(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<PacketRecord>, ApiError> {
    let store = st.store.clone();
    Ok(Json(
        blocking(move || find_packet(store.as_ref(), &id)).await?,
    ))
}

/// Every stored packet, newest first, with the agents whose last reported deployment runs
/// it.
#[utoipa::path(get, path = "/packets", responses((status = 200, body = [PacketListing], links(
            ("PacketMeta" = (operation_id = "packet_meta", parameters(("id" = "$response.body#/0/packet_id")))),
            ("Download" = (operation_id = "download", parameters(("id" = "$response.body#/0/packet_id"))))
        ))))]
pub async fn list_packets(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Vec<PacketListing>>, ApiError> {
    let store = st.store.clone();
    Ok(Json(
        blocking(move || {
            Ok(PacketListing::gather(
                store.list_packets()?,
                &store.list_deployments()?,
            ))
        })
        .await?,
    ))
}
