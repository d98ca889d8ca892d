//! The API Gateway Lambda authorizer: REST API `TOKEN` and `REQUEST` events and HTTP API
//! payload 2.0 events; a Bearer access JWT (first-party, or an OAuth `at+jwt`), an
//! `x-api-key`, or — REQUEST and HTTP API events only — the `web` function's session cookie
//! (`authType: "session"`; unsafe methods also need `x-csrf-token`).
//!
//! Common-path cost: a JWT is verified in memory against the key ring and a revocation set
//! the container reloads at most every `REVOCATION_REFRESH_SECONDS` (one Query), so a
//! logged-out token is refused within that window and most requests make NO DynamoDB
//! request. An API key costs one GetItem, then none for `API_KEY_CACHE_SECONDS` (a bounded
//! cache of positive results, `apikeys::KeyCache`, never past the key's own expiry). A
//! session costs one consistent GetItem per decision (sign-out is immediate), plus a
//! last-seen write at most once a minute per session.
//!
//! Caching by API Gateway: an Allow is always for the whole stage (`apiId/stage/*`), plus an
//! explicit Deny for every route rule this principal does not satisfy, so the same policy is
//! right for every route it may be reused for.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::config::AuthorizerResponse;
use crate::error::Error;
pub use crate::rules::{Requirement, RouteRule};
use crate::state::AppState;
use crate::store::RevocationSet;
use crate::token::{TokenError, TokenUse};

/// Most revocations an authorizer holds in memory; beyond it, JWTs are refused (fail closed).
pub const MAX_REVOCATIONS: usize = 200_000;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        id: String,
        email: String,
        role: String,
        /// Signed in with a second factor (`amr` has `mfa`).
        mfa: bool,
    },
    ApiKey {
        id: String,
        name: String,
        scopes: Vec<String>,
    },
    /// An OAuth client: with a client-credentials access token (`user` none), or acting for
    /// a user who authorized it (authorization code grant: `user` is that user's id).
    Client {
        id: String,
        scopes: Vec<String>,
        user: Option<String>,
    },
    /// A signed-in browser (the `web` function's session cookie).
    Session {
        id: String,
        email: String,
        role: String,
        mfa: bool,
    },
}

impl Principal {
    pub fn principal_id(&self) -> String {
        match self {
            Self::User { id, .. } | Self::ApiKey { id, .. } | Self::Session { id, .. } => {
                id.clone()
            }
            Self::Client {
                user: Some(user), ..
            } => user.clone(),
            Self::Client { id, .. } => format!("client:{id}"),
        }
    }

    fn satisfies(&self, need: &Requirement) -> bool {
        match (self, need) {
            (Self::User { role, .. } | Self::Session { role, .. }, Requirement::Role(r)) => {
                role == r
            }
            (Self::User { mfa, .. } | Self::Session { mfa, .. }, Requirement::Mfa) => *mfa,
            (Self::ApiKey { scopes, .. } | Self::Client { scopes, .. }, Requirement::Scope(s)) => {
                scopes.iter().any(|x| x == s)
            }
            _ => false,
        }
    }

    /// The authorizer context: strings only, as API Gateway requires.
    pub fn context(&self) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert("principalId".into(), self.principal_id().into());
        match self {
            Self::User {
                id,
                email,
                role,
                mfa,
            } => {
                ctx.insert("userId".into(), id.as_str().into());
                ctx.insert("email".into(), email.as_str().into());
                ctx.insert("role".into(), role.as_str().into());
                ctx.insert("scopes".into(), "".into());
                ctx.insert("authType".into(), "jwt".into());
                ctx.insert("mfa".into(), mfa.to_string().into());
            }
            Self::ApiKey { id, name, scopes } => {
                ctx.insert("keyId".into(), id.as_str().into());
                ctx.insert("keyName".into(), name.as_str().into());
                ctx.insert("scopes".into(), scopes.join(" ").into());
                ctx.insert("authType".into(), "apiKey".into());
            }
            Self::Client { id, scopes, user } => {
                ctx.insert("clientId".into(), id.as_str().into());
                if let Some(user) = user {
                    ctx.insert("userId".into(), user.as_str().into());
                }
                ctx.insert("scopes".into(), scopes.join(" ").into());
                ctx.insert("authType".into(), "oauth".into());
            }
            Self::Session {
                id,
                email,
                role,
                mfa,
            } => {
                ctx.insert("userId".into(), id.as_str().into());
                ctx.insert("email".into(), email.as_str().into());
                ctx.insert("role".into(), role.as_str().into());
                ctx.insert("scopes".into(), "".into());
                ctx.insert("authType".into(), "session".into());
                ctx.insert("mfa".into(), mfa.to_string().into());
            }
        }
        ctx
    }
}

/// The route being authorized, from the method/route ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    /// `arn:aws:execute-api:region:account:api/stage`
    stage_arn: String,
    method: String,
    path: String,
}

impl Route {
    fn from_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(4, '/');
        let (api, stage, method) = (parts.next()?, parts.next()?, parts.next()?);
        if !api.starts_with("arn:") || stage.is_empty() || method.is_empty() {
            return None;
        }
        Some(Self {
            stage_arn: format!("{api}/{stage}"),
            method: method.to_ascii_uppercase(),
            path: format!("/{}", parts.next().unwrap_or_default()),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    RestToken,
    RestRequest,
    HttpV2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    Bearer(String),
    ApiKey(String),
    /// The `web` function's session cookie (REST REQUEST and HTTP API events only).
    Session(String),
    None,
}

/// A cookie's value from the event: HTTP API 2.0 carries cookies in `cookies`, REST in the
/// `Cookie` header.
fn event_cookie(event: &Value, name: &str) -> Option<String> {
    let from_array = event
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let from_header = header(event, "cookie").into_iter();
    from_array
        .chain(from_header)
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event
        .get("headers")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn bearer_of(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// Why the authorizer could not decide (answered as an error, which API Gateway does not
/// cache, so a passing outage never sticks to a caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error_type: &'static str,
    pub message: &'static str,
}

impl Failure {
    /// REST APIs turn exactly this message into a 401.
    pub const UNAUTHORIZED: Self = Self {
        error_type: "Unauthorized",
        message: "Unauthorized",
    };
    pub const UNAVAILABLE: Self = Self {
        error_type: "ServiceUnavailable",
        message: "authorizer dependencies unavailable",
    };
}

enum Decision {
    Allow(Principal),
    Unauthorized,
    Unavailable,
}

/// The authorizer's per-container state: the app state (with its API-key cache) plus the
/// revocation set.
pub struct Authorizer {
    pub app: AppState,
    revocations: Mutex<Option<(i64, Arc<RevocationSet>)>>,
}

impl Authorizer {
    pub fn new(app: AppState) -> Self {
        Self {
            app,
            revocations: Mutex::new(None),
        }
    }

    /// Put a revocation set in force as if loaded at `now` (benchmarks and tests that measure
    /// the in-memory decision alone).
    pub fn seed_revocations(&self, set: RevocationSet, now: i64) {
        if let Ok(mut guard) = self.revocations.lock() {
            *guard = Some((now, Arc::new(set)));
        }
    }

    async fn revocation_set(&self, now: i64) -> Result<Arc<RevocationSet>, Error> {
        if let Ok(guard) = self.revocations.lock()
            && let Some((loaded, set)) = guard.as_ref()
            && now >= *loaded
            && now - loaded < self.app.config.revocation_refresh
        {
            return Ok(set.clone());
        }
        let set = Arc::new(self.app.revoked.load(now, MAX_REVOCATIONS).await?);
        if let Ok(mut guard) = self.revocations.lock() {
            *guard = Some((now, set.clone()));
        }
        Ok(set)
    }

    async fn authenticate_jwt(&self, token: &str, now: i64) -> Decision {
        // A user's access token, or an OAuth access token (`typ: at+jwt`); `verify` checks the
        // header and the claims agree, so the peek only picks which one to verify as.
        let expected = if crate::token::is_oauth_token(token) {
            TokenUse::OAuth
        } else {
            TokenUse::Access
        };
        let claims = match self.app.verify_token(token, expected, now).await {
            Ok(claims) => claims,
            Err(TokenError::Expired | TokenError::Invalid | TokenError::UnknownKey) => {
                return Decision::Unauthorized;
            }
        };
        match self.revocation_set(now).await {
            // An OAuth token also stops when its client is disabled (an entry under the
            // client's id), whoever its subject is.
            Ok(set)
                if set.is_revoked(&claims.jti, &claims.sub, claims.iat)
                    || claims
                        .client_id
                        .as_deref()
                        .is_some_and(|c| set.is_revoked(&claims.jti, c, claims.iat)) =>
            {
                Decision::Unauthorized
            }
            Ok(_) if expected == TokenUse::OAuth => {
                let id = claims.client_id.unwrap_or_default();
                Decision::Allow(Principal::Client {
                    scopes: claims
                        .scope
                        .unwrap_or_default()
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    user: (claims.sub != id).then_some(claims.sub),
                    id,
                })
            }
            Ok(_) => Decision::Allow(Principal::User {
                mfa: crate::token::Auth::from_amr(claims.amr.as_deref()).is_mfa(),
                email: claims.email.unwrap_or_default(),
                role: claims.role.unwrap_or_default(),
                id: claims.sub,
            }),
            Err(e) => {
                tracing::error!(error = %e, "revocation list unavailable: denying");
                Decision::Unavailable
            }
        }
    }

    /// A browser session: one consistent GetItem (sign-out and sign-out-everywhere take effect
    /// at once). Unsafe methods also need `x-csrf-token` = the session's CSRF token, which a
    /// cross-site page can neither read nor compute.
    async fn authenticate_session(
        &self,
        id: &str,
        event: &Value,
        method: Option<&str>,
        now: i64,
    ) -> Decision {
        let signed_in = match crate::web::session_of(&self.app, Some(id), now).await {
            Ok(Some(s)) => s,
            Ok(None) => return Decision::Unauthorized,
            Err(Error::Unavailable(_) | Error::Internal(_)) => return Decision::Unavailable,
            Err(_) => return Decision::Unauthorized,
        };
        let safe = matches!(method, Some("GET" | "HEAD" | "OPTIONS"));
        if !safe {
            let expected = crate::web::csrf_token(&signed_in.id);
            let presented = header(event, crate::web::CSRF_HEADER).unwrap_or_default();
            if presented.len() != expected.len()
                || !bool::from(subtle::ConstantTimeEq::ct_eq(
                    presented.as_bytes(),
                    expected.as_bytes(),
                ))
            {
                return Decision::Unauthorized;
            }
        }
        Decision::Allow(Principal::Session {
            id: signed_in.session.user_id,
            email: signed_in.session.email,
            role: signed_in.session.role,
            mfa: signed_in.session.mfa,
        })
    }

    async fn authenticate_key(&self, key: &str, now: i64) -> Decision {
        let ttl = self.app.config.api_key_cache;
        let cache = &self.app.key_cache;
        match cache.validate(&self.app, Some(key), ttl, now).await {
            Ok(info) => Decision::Allow(Principal::ApiKey {
                id: info.id,
                name: info.name,
                scopes: info.scopes,
            }),
            Err(Error::Unavailable(_) | Error::Internal(_)) => Decision::Unavailable,
            Err(_) => Decision::Unauthorized,
        }
    }

    /// Answer one authorizer event (any of the three kinds), at time `now`.
    pub async fn handle(&self, event: &Value, now: i64) -> Result<Value, Failure> {
        let kind = match (
            event.get("version").and_then(Value::as_str),
            event.get("type").and_then(Value::as_str),
        ) {
            (Some("2.0"), _) => EventKind::HttpV2,
            (_, Some("TOKEN")) => EventKind::RestToken,
            (_, Some("REQUEST")) => EventKind::RestRequest,
            _ => return Err(Failure::UNAUTHORIZED),
        };
        let arn_field = if kind == EventKind::HttpV2 {
            "routeArn"
        } else {
            "methodArn"
        };
        let route = event
            .get(arn_field)
            .and_then(Value::as_str)
            .and_then(Route::from_arn);
        let credential = match kind {
            EventKind::RestToken => match event.get("authorizationToken").and_then(Value::as_str) {
                Some(t) if t.starts_with(crate::store::api_keys::KEY_PREFIX) => {
                    Credential::ApiKey(t.to_owned())
                }
                Some(t) => bearer_of(t).map_or(Credential::None, Credential::Bearer),
                None => Credential::None,
            },
            _ => match (
                header(event, "authorization").and_then(bearer_of),
                header(event, "x-api-key"),
            ) {
                (Some(token), _) => Credential::Bearer(token),
                (None, Some(key)) if !key.trim().is_empty() => {
                    Credential::ApiKey(key.trim().to_owned())
                }
                _ => event_cookie(event, crate::web::SESSION_COOKIE)
                    .map_or(Credential::None, Credential::Session),
            },
        };
        let decision = match &credential {
            Credential::Bearer(token) => self.authenticate_jwt(token, now).await,
            Credential::ApiKey(key) => self.authenticate_key(key, now).await,
            Credential::Session(id) => {
                // The method of the request itself (the ARN's may be missing).
                let method = event
                    .pointer("/requestContext/http/method")
                    .or_else(|| event.get("httpMethod"))
                    .and_then(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .or_else(|| route.as_ref().map(|r| r.method.clone()));
                self.authenticate_session(id, event, method.as_deref(), now)
                    .await
            }
            Credential::None => Decision::Unauthorized,
        };
        let simple = kind == EventKind::HttpV2
            && self.app.config.authorizer_response == AuthorizerResponse::Simple;
        let principal = match decision {
            Decision::Unavailable => return Err(Failure::UNAVAILABLE),
            Decision::Unauthorized if simple => return Ok(json!({"isAuthorized": false})),
            Decision::Unauthorized => return Err(Failure::UNAUTHORIZED),
            Decision::Allow(principal) => principal,
        };
        let Some(route) = route else {
            // A credential but no usable ARN: nothing we could scope an Allow to.
            return if simple {
                Ok(json!({"isAuthorized": false}))
            } else {
                Err(Failure::UNAUTHORIZED)
            };
        };
        let failed: Vec<&RouteRule> = self
            .app
            .config
            .authorizer_route_rules
            .iter()
            .filter(|r| !principal.satisfies(&r.requirement))
            .collect();
        let forbidden_here = failed.iter().any(|r| r.matches(&route.method, &route.path));
        tracing::info!(
            audit = "authorizer_decision",
            principal_id = %principal.principal_id(),
            route = %format!("{} {}", route.method, route.path),
            allowed = !forbidden_here,
            "authorizer"
        );
        if simple {
            return Ok(if forbidden_here {
                json!({"isAuthorized": false})
            } else {
                json!({"isAuthorized": true, "context": principal.context()})
            });
        }
        let mut statements = vec![json!({
            "Action": "execute-api:Invoke",
            "Effect": "Allow",
            "Resource": format!("{}/*", route.stage_arn),
        })];
        for rule in failed {
            statements.push(json!({
                "Action": "execute-api:Invoke",
                "Effect": "Deny",
                "Resource": rule.resource(&route.stage_arn),
            }));
        }
        Ok(json!({
            "principalId": principal.principal_id(),
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": principal.context(),
        }))
    }
}

/// Run the authorizer function: state once per cold start (key ring and revocation set),
/// then every event with the system clock.
pub async fn serve() -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
    let clock = crate::state::ColdStart::begin();
    lambda_http::tracing::init_default_subscriber();
    let config =
        crate::config::Config::from_env().map_err(|e| crate::state::StartupError(e.to_string()))?;
    let config_us = clock.micros();
    let aws = crate::state::AwsClients::load().await;
    let clients_us = clock.micros();
    // Cold start: the key ring and the revocation list are independent network reads, so
    // they run concurrently. If the key ring cannot be read, every event retries the start
    // and is answered with an (uncached) error meanwhile: fail closed, no crash loop.
    let start = || async {
        let revoked =
            crate::store::RevokedStore::new(aws.dynamodb.clone(), &config.tables.revoked_tokens);
        let now = crate::state::now();
        let (ring, revocations) = tokio::join!(
            aws.load_key_ring(&config.signing_keys_secret_id),
            revoked.load(now, MAX_REVOCATIONS)
        );
        let ring = ring.map_err(|e| {
            crate::state::StartupError(format!(
                "loading signing keys from {}: {e}",
                config.signing_keys_secret_id
            ))
        })?;
        let authorizer = Authorizer::new(AppState::new(config.clone(), aws.clone(), ring));
        match revocations {
            Ok(set) => authorizer.seed_revocations(set, now),
            // Not fatal: the first JWT request retries, and denies if it still cannot load.
            Err(e) => tracing::warn!(error = %e, "revocation list not loaded at start"),
        }
        Ok::<_, crate::state::StartupError>(authorizer)
    };
    let cell = tokio::sync::OnceCell::new();
    if let Err(e) = cell.get_or_try_init(start).await {
        tracing::error!(error = %e, "cold start incomplete; denying until it succeeds");
    }
    clock.log(config_us, clients_us);
    let (cell, start) = (&cell, &start);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let to_diagnostic = |f: Failure| Diagnostic {
            error_type: f.error_type.into(),
            error_message: f.message.into(),
        };
        let authorizer = cell
            .get_or_try_init(start)
            .await
            .map_err(|_| to_diagnostic(Failure::UNAVAILABLE))?;
        let now = crate::state::now();
        authorizer.app.refresh_keys_if_stale(now).await;
        authorizer
            .handle(&event.payload, now)
            .await
            .map_err(to_diagnostic)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_come_from_arns() {
        let r = Route::from_arn(
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/admin/users",
        )
        .unwrap();
        assert_eq!(
            r.stage_arn,
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod"
        );
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/admin/users")
        );
        let r = Route::from_arn("arn:aws:execute-api:us-east-1:123456789012:abc123/$default/POST/")
            .unwrap();
        assert_eq!(r.path, "/");
        assert!(Route::from_arn("garbage").is_none());
        assert!(Route::from_arn("arn:x/prod").is_none());
    }

    #[test]
    fn principals_satisfy_by_role_or_scope_and_context_is_strings() {
        let user = Principal::User {
            id: "usr_1".into(),
            email: "a@example.com".into(),
            role: "admin".into(),
            mfa: false,
        };
        let key = Principal::ApiKey {
            id: "k1".into(),
            name: "ci".into(),
            scopes: vec!["read".into(), "write".into()],
        };
        assert!(user.satisfies(&Requirement::Role("admin".into())));
        assert!(!user.satisfies(&Requirement::Scope("read".into())));
        assert!(key.satisfies(&Requirement::Scope("write".into())));
        assert!(!key.satisfies(&Requirement::Role("admin".into())));
        for ctx in [user.context(), key.context()] {
            assert!(ctx.values().all(Value::is_string));
        }
        assert_eq!(key.context()["scopes"], "read write");
        assert_eq!(user.context()["authType"], "jwt");
    }
}
