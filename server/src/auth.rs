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

/// Who sent a request: what the token may do and for whom. Inserted into the request's
/// extensions by the middleware below, read by handlers that act for an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The token's role (admin for open access).
    pub role: Role,
    /// The agents it speaks for; `None`: any.
    pub agents: Option<Vec<String>>,
    /// The token's fingerprint (`sha256:` and 16 hex digits), never the token; `None`
    /// for open access.
    pub token: Option<String>,
}

impl Caller {
    /// Open access: an admin for every agent, without a token.
    pub fn open() -> Self {
        Caller {
            role: Role::Admin,
            agents: None,
            token: None,
        }
    }

    /// Refuses (403 `wrong_agent`) a request that names an agent this token does not
    /// speak for. Admins speak for every agent.
    pub fn speak_for(&self, agent: &str) -> Result<(), ApiError> {
        match &self.agents {
            Some(agents) if self.role < Role::Admin && !agents.iter().any(|a| a == agent) => {
                Err(ApiError::WrongAgent(agent.to_owned()))
            }
            _ => Ok(()),
        }
    }
}

/// One configured token, hashed.
#[derive(Clone)]
struct Token {
    digest: [u8; 32],
    role: Role,
    agents: Vec<String>,
}

/// The configured tokens, hashed (comparison runs on digests in constant time).
#[derive(Clone)]
pub struct Auth {
    open: bool,
    tokens: Vec<Token>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The fingerprint stored as a chunk's provenance: the first 8 bytes of the digest, hex.
fn fingerprint(digest: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(&digest[..8]))
}

impl Auth {
    /// Tokens from the configuration; `open` when none is needed.
    pub fn new(tokens: &[TokenConfig], open: bool) -> Self {
        let unbound = tokens
            .iter()
            .filter(|t| t.role == Role::Agent && t.agents.is_empty())
            .count();
        if unbound > 0 {
            tracing::warn!(
                tokens = unbound,
                "agent tokens without agents may speak for any agent: bind them (agents = [..], or AGENT@TOKEN)"
            );
        }
        Auth {
            open,
            tokens: tokens
                .iter()
                .map(|t| Token {
                    digest: digest(&t.token),
                    role: t.role,
                    agents: t.agents.clone(),
                })
                .collect(),
        }
    }

    /// Whether requests need no token.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Who a presented token is. A token configured more than once gets the highest role
    /// and every agent named (any, if one entry names none).
    pub fn caller_of(&self, token: &str) -> Option<Caller> {
        let d = digest(token);
        let mut found: Option<Caller> = None;
        for t in &self.tokens {
            let diff = t
                .digest
                .iter()
                .zip(&d)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff != 0 {
                continue;
            }
            let agents = (!t.agents.is_empty()).then(|| t.agents.clone());
            found = Some(match found {
                None => Caller {
                    role: t.role,
                    agents,
                    token: Some(fingerprint(&d)),
                },
                Some(mut c) => {
                    c.role = c.role.max(t.role);
                    c.agents = match (c.agents, agents) {
                        (Some(mut a), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    };
                    c
                }
            });
        }
        found
    }

    /// Checks a request for `needed` and says who sent it.
    pub fn check(&self, req: &Request, needed: Role) -> Result<Caller, ApiError> {
        if self.open {
            return Ok(Caller::open());
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
        let caller = self.caller_of(token).ok_or(ApiError::Unauthorized)?;
        if caller.role < needed {
            return Err(ApiError::Forbidden(match needed {
                Role::Admin => "use this endpoint (admin only)",
                Role::Agent => "use this endpoint",
            }));
        }
        Ok(caller)
    }
}

/// Middleware: requires the agent role.
pub async fn require_agent(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = state.auth.check(&req, Role::Agent)?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Middleware: requires the admin role.
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = state.auth.check(&req, Role::Admin)?;
    req.extensions_mut().insert(caller);
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
                    agents: vec![],
                },
                TokenConfig {
                    token: "admin-token-0123456".into(),
                    role: Role::Admin,
                    agents: vec![],
                },
                TokenConfig {
                    token: "robot-token-0123456".into(),
                    role: Role::Agent,
                    agents: vec!["robot-1".into(), "robot-2".into()],
                },
            ],
            false,
        );
        assert_eq!(
            auth.caller_of("agent-token-0123456").map(|c| c.role),
            Some(Role::Agent)
        );
        assert_eq!(
            auth.caller_of("admin-token-0123456").map(|c| c.role),
            Some(Role::Admin)
        );
        assert!(auth.caller_of("nope").is_none());
        assert!(Role::Admin > Role::Agent);
    }

    #[test]
    fn bound_tokens_speak_only_for_their_agents() {
        let auth = Auth::new(
            &[
                TokenConfig {
                    token: "robot-token-0123456".into(),
                    role: Role::Agent,
                    agents: vec!["robot-1".into(), "robot-2".into()],
                },
                TokenConfig {
                    token: "legacy-token-012345".into(),
                    role: Role::Agent,
                    agents: vec![],
                },
                TokenConfig {
                    token: "admin-token-0123456".into(),
                    role: Role::Admin,
                    agents: vec![],
                },
            ],
            false,
        );
        let robot = auth.caller_of("robot-token-0123456").unwrap();
        assert!(robot.speak_for("robot-1").is_ok() && robot.speak_for("robot-2").is_ok());
        assert!(
            matches!(robot.speak_for("robot-3"), Err(ApiError::WrongAgent(a)) if a == "robot-3")
        );
        let fp = robot.token.clone().unwrap();
        assert!(
            fp.starts_with("sha256:") && fp.len() == 7 + 16 && !fp.contains("robot"),
            "{fp}"
        );
        assert!(
            auth.caller_of("legacy-token-012345")
                .unwrap()
                .speak_for("anyone")
                .is_ok()
        );
        assert!(
            auth.caller_of("admin-token-0123456")
                .unwrap()
                .speak_for("anyone")
                .is_ok()
        );
        assert!(Caller::open().speak_for("anyone").is_ok());
    }
}
