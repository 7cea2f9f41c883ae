//! Bearer tokens with roles. A loopback bind with no tokens runs open (every request is
//! admin); otherwise `Authorization: Bearer <token>` is required (WebSockets may pass
//! `?token=` instead, since browsers cannot set headers on them).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::config::{Role, TokenConfig};
use crate::error::ApiError;

/// The configured tokens, hashed (comparison runs on digests in constant time).
#[derive(Clone)]
pub struct Auth {
    open: bool,
    tokens: Vec<([u8; 32], Role)>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// Tokens from the configuration; `open` when none is needed.
    pub fn new(tokens: &[TokenConfig], open: bool) -> Self {
        Auth {
            open,
            tokens: tokens.iter().map(|t| (digest(&t.token), t.role)).collect(),
        }
    }

    /// Whether requests need no token.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The role of a presented token.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let d = digest(token);
        let mut found = None;
        for (t, role) in &self.tokens {
            let diff = t.iter().zip(&d).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(found.map_or(*role, |r: Role| r.max(*role)));
            }
        }
        found
    }

    /// Checks a request for `needed`.
    pub fn check(&self, req: &Request, needed: Role) -> Result<Role, ApiError> {
        if self.open {
            return Ok(Role::Admin);
        }
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let query = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        let token = header.or(query).ok_or(ApiError::Unauthorized)?;
        let role = self.role_of(token).ok_or(ApiError::Unauthorized)?;
        if role < needed {
            return Err(ApiError::Forbidden(match needed {
                Role::Admin => "use this endpoint (admin only)",
                Role::Agent => "use this endpoint",
            }));
        }
        Ok(role)
    }
}

/// Middleware: requires the agent role.
pub async fn require_agent(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.auth.check(&req, Role::Agent)?;
    Ok(next.run(req).await)
}

/// Middleware: requires the admin role.
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.auth.check(&req, Role::Admin)?;
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_found_by_token() {
        let auth = Auth::new(
            &[
                TokenConfig {
                    token: "agent-token-0123456".into(),
                    role: Role::Agent,
                },
                TokenConfig {
                    token: "admin-token-0123456".into(),
                    role: Role::Admin,
                },
            ],
            false,
        );
        assert_eq!(auth.role_of("agent-token-0123456"), Some(Role::Agent));
        assert_eq!(auth.role_of("admin-token-0123456"), Some(Role::Admin));
        assert_eq!(auth.role_of("nope"), None);
        assert!(Role::Admin > Role::Agent);
    }
}
