//! OAuth 2.0 authorization server, token side: the client credentials grant (RFC 6749
//! §4.4), the authorization code grant's exchange with PKCE (§4.1.3, RFC 7636; the
//! authorization endpoint is the `web` function's), refresh tokens (§6) with rotation and
//! reuse detection, token revocation (RFC 7009), token introspection (RFC 7662), OpenID
//! Connect ID tokens and userinfo (OIDC Core §3.1, §5.3) and the metadata document (RFC
//! 8414). Access tokens are JWTs from the same key ring, in the RFC 9068 profile (`typ:
//! at+jwt`, `client_id`, `scope`; `sub` is the client or the user), so the authorizer
//! verifies them in memory.
//!
//! These endpoints speak the RFCs' wire format — form bodies in, `{"error",
//! "error_description"}` out — not the `data`/`error` envelope of the JSON functions.
//! `OAuthError` is the one place that format is made.
//!
//! DynamoDB per token issue: one GetItem (the client), then one TransactWriteItems (the per
//! IP counter, and the per client one once the client has authenticated: so the write waits
//! for the read); plus a last-used write at most once per
//! client per `CLIENT_LAST_USED_INTERVAL` seconds. Introspection: the client and the token's
//! revocation entry (two GetItems); revocation adds one PutItem. A code exchange: the client
//! GetItem, the rate-limit write, the code's conditional UpdateItem and the refresh token's
//! PutItem (4). A refresh: client, rate limit, user GetItem, the rotation transaction (4).
//! Syntactic errors are answered before any request.

use std::collections::BTreeMap;

use base64::Engine as _;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use crate::error::Error;
use crate::http::{self, MAX_BODY_BYTES, header_str};
use crate::state::AppState;
use crate::store::clients::{
    CLIENT_ID_PREFIX, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
    SUPPORTED_GRANTS,
};
use crate::store::web::{RedeemRefused, Redemption};
use crate::store::{ClientRecord, RefreshRecord, RefreshStatus};
use crate::token::{TokenError, TokenUse, UserGrant};

/// At most one last-used write per client per this many seconds.
pub const CLIENT_LAST_USED_INTERVAL: i64 = 300;
/// Longest client id or secret we look at (characters).
const MAX_CREDENTIAL_LEN: usize = 256;
/// Longest `scope` parameter we look at (characters).
const MAX_SCOPE_LEN: usize = 1024;
/// The authentication methods of the token, revocation and introspection endpoints.
pub const AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];
/// The token endpoint's: also `none`, for public clients (PKCE binds their codes).
pub const TOKEN_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];

/// An OAuth error response (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 7662 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    /// Seconds, for `Retry-After` (429 and 503).
    pub retry_after: Option<i64>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    /// Client authentication failed: 401 with a `WWW-Authenticate: Basic` challenge (RFC 6749
    /// §5.2 requires it when the client used Basic, and allows it to name the schemes
    /// otherwise). The description never says which part was wrong.
    pub fn invalid_client() -> Self {
        Self::new(401, "invalid_client", "client authentication failed")
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_scope", description)
    }

    pub fn unsupported_grant_type() -> Self {
        Self::new(
            400,
            "unsupported_grant_type",
            "the grant type is not supported",
        )
    }

    pub fn unauthorized_client() -> Self {
        Self::new(
            400,
            "unauthorized_client",
            "the client may not use this grant type",
        )
    }

    /// The answer as an HTTP response: JSON, `Cache-Control: no-store`.
    pub fn response(&self) -> Response<Body> {
        if self.status >= 500 {
            tracing::error!(error = self.error, "oauth request failed");
        }
        let body = json!({"error": self.error, "error_description": self.description});
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::PRAGMA, "no-cache")
            .header("x-content-type-options", "nosniff");
        if self.status == 401 {
            builder = builder.header(header::WWW_AUTHENTICATE, r#"Basic realm="portcullis""#);
        }
        if self.status == 405 {
            builder = builder.header(header::ALLOW, "POST");
        }
        if let Some(seconds) = self.retry_after {
            builder = builder.header(header::RETRY_AFTER, seconds.max(1).to_string());
        }
        builder
            .body(Body::Text(body.to_string()))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl From<Error> for OAuthError {
    /// Failures of the stores and of signing: 503 when DynamoDB or Secrets Manager cannot
    /// answer (fail closed), 500 otherwise. Detail goes to the log, never to the client.
    fn from(err: Error) -> Self {
        match err {
            Error::Unavailable(detail) => {
                tracing::error!(error = %detail, "oauth: store unavailable");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        503,
                        "temporarily_unavailable",
                        "the service is temporarily unavailable",
                    )
                }
            }
            Error::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(429, "rate_limited", "too many requests; retry later")
            },
            other => {
                tracing::error!(error = %other, "oauth: internal error");
                Self::new(500, "server_error", "internal error")
            }
        }
    }
}

/// The answer while a cold start cannot complete (`handlers::serve_with`): 503
/// `temporarily_unavailable`, in the RFCs' format.
pub fn unavailable_response(err: &Error) -> Response<Body> {
    OAuthError::from(Error::Unavailable(err.to_string())).response()
}

impl From<crate::error::StoreError> for OAuthError {
    fn from(err: crate::error::StoreError) -> Self {
        Self::from(Error::from(err))
    }
}

/// At most `max` characters of caller-supplied text, keeping only what RFC 6749 §5.2 allows
/// in `error_description` (printable ASCII but `"` and `\`), for echoing a name back.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .take(max)
        .collect()
}

/// The parameters of a form body: each at most once (RFC 6749 §3.1, §3.2), empty values
/// treated as absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// Parse an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is repeated",
                    printable(&name, 40)
                )));
            }
        }
        map.retain(|_, v| !v.is_empty());
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter `{name}` is required")))
    }
}

/// The form of a POST to an OAuth endpoint: method, media type and size checked first.
pub fn request_form(req: &Request) -> Result<Form, OAuthError> {
    if req.method() != Method::POST {
        return Err(OAuthError::new(405, "invalid_request", "use POST"));
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(OAuthError::new(
            413,
            "invalid_request",
            "the body is too large",
        ));
    }
    let media = header_str(req, "content-type")
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Form::parse(bytes)
}

/// A client's claimed identity, before it is checked.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCredentials(id={}, secret=<redacted>)", self.id)
    }
}

/// `Authorization: Basic` per RFC 6749 §2.3.1: base64 of `id:secret`, each part
/// form-urlencoded first. `Ok(None)` when there is no Basic header.
fn basic_credentials(req: &Request) -> Result<Option<ClientCredentials>, OAuthError> {
    let Some(value) = header_str(req, "authorization") else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(OAuthError::invalid_client)?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    let unescape = |part: &str| -> String {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some(ClientCredentials {
        id: unescape(id),
        secret: unescape(secret),
    }))
}

/// The client's credentials from exactly one method: Basic, or `client_id` +
/// `client_secret` in the body (RFC 6749 §2.3: a client MUST NOT use more than one).
pub fn client_credentials(req: &Request, form: &Form) -> Result<ClientCredentials, OAuthError> {
    let basic = basic_credentials(req)?;
    let post_secret = form.get("client_secret");
    let creds = match (basic, post_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some(basic), None) => {
            if form.get("client_id").is_some_and(|id| id != basic.id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the authenticated client",
                ));
            }
            basic
        }
        (None, Some(secret)) => ClientCredentials {
            id: form
                .get("client_id")
                .ok_or_else(OAuthError::invalid_client)?
                .to_owned(),
            secret: secret.to_owned(),
        },
        // A public client (RFC 6749 §2.1) names itself and proves nothing: PKCE (token
        // endpoint) or the token itself (revocation) is what binds the request to it.
        (None, None) => ClientCredentials {
            id: form
                .get("client_id")
                .ok_or_else(OAuthError::invalid_client)?
                .to_owned(),
            secret: String::new(),
        },
    };
    if creds.id.is_empty()
        || creds.id.len() > MAX_CREDENTIAL_LEN
        || creds.secret.len() > MAX_CREDENTIAL_LEN
    {
        return Err(OAuthError::invalid_client());
    }
    Ok(creds)
}

/// The scopes granted for a request: the requested ones if every one is the client's,
/// all of the client's when none are requested (RFC 6749 §3.3). Returned space-separated,
/// in the client's order, without duplicates.
pub fn granted_scope(client: &ClientRecord, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.join(" "));
    };
    if requested.len() > MAX_SCOPE_LEN {
        return Err(OAuthError::invalid_scope("the scope is too long"));
    }
    let wanted: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    let well_formed = |s: &str| {
        s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
    };
    if wanted.is_empty() || !wanted.iter().all(|s| well_formed(s)) {
        return Err(OAuthError::invalid_scope("the scope is malformed"));
    }
    if let Some(other) = wanted
        .iter()
        .find(|s| !client.scopes.iter().any(|c| c == *s))
    {
        return Err(OAuthError::invalid_scope(format!(
            "scope `{}` is not allowed for this client",
            printable(other, 64)
        )));
    }
    Ok(client
        .scopes
        .iter()
        .filter(|c| wanted.contains(&c.as_str()))
        .cloned()
        .collect::<Vec<_>>()
        .join(" "))
}

/// Whether `id` has the shape of a client id (`cl_` + 22 alphanumerics): anything else is
/// refused without a read, and never written to a log (it may be a secret pasted in the
/// wrong field).
pub fn looks_like_client_id(id: &str) -> bool {
    id.strip_prefix(CLIENT_ID_PREFIX)
        .is_some_and(|rest| rest.len() == 22 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Read the client (one consistent GetItem) and check its secret. With `count_rate` (the
/// token endpoint) the request is then counted in ONE write: against the source IP always,
/// and against the client only once it has authenticated — so nobody who merely knows a
/// client id can hold that client at 429. Every authentication failure is `invalid_client`,
/// alike, and an audit event.
async fn authenticate(
    state: &AppState,
    creds: &ClientCredentials,
    client_ip: &str,
    count_rate: bool,
    now: i64,
) -> Result<ClientRecord, OAuthError> {
    let well_formed = looks_like_client_id(&creds.id);
    let found = if well_formed {
        state.clients.get(&creds.id).await?
    } else {
        None
    };
    let disabled = found.as_ref().is_some_and(|c| c.disabled);
    // A public client must present no secret, a confidential one its secret.
    let verified = found
        .as_ref()
        .filter(|c| {
            !c.disabled
                && if c.public {
                    creds.secret.is_empty()
                } else {
                    c.secret_matches(&creds.secret, now)
                }
        })
        .cloned();
    if count_rate {
        let ip_key = format!("oauth#ip#{client_ip}");
        let client_key = verified.as_ref().map(|c| format!("oauth#client#{}", c.id));
        let mut limits = vec![(ip_key.as_str(), state.config.oauth_token_ip_rate_limit)];
        if let Some(key) = &client_key {
            limits.push((key.as_str(), state.config.oauth_token_rate_limit));
        }
        if let Some(retry_after) = state.rate_limits.hit_all(&limits, now).await? {
            let client_id = verified.as_ref().map_or("-", |c| c.id.as_str());
            tracing::warn!(audit = "oauth_rate_limited", client_id = %client_id, client_ip = %client_ip, "oauth");
            return Err(Error::RateLimited { retry_after }.into());
        }
    }
    match verified {
        Some(client) => Ok(client),
        None => {
            tracing::warn!(
                audit = "oauth_client_auth_failed",
                client_id = %if well_formed { creds.id.as_str() } else { "<malformed>" },
                client_ip = %client_ip,
                known = found.is_some(),
                disabled,
                "oauth"
            );
            Err(OAuthError::invalid_client())
        }
    }
}

/// A successful JSON answer of an OAuth endpoint: `Cache-Control: no-store` (RFC 6749 §5.1).
fn ok_json(value: &Value) -> Response<Body> {
    let mut resp = http::document_response(value, "no-store");
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// `POST /oauth/token`.
pub async fn token(
    state: &AppState,
    req: &Request,
    now: i64,
) -> Result<Response<Body>, OAuthError> {
    let form = request_form(req)?;
    let creds = client_credentials(req, &form)?;
    let grant = form.require("grant_type")?;
    if !SUPPORTED_GRANTS.contains(&grant) {
        return Err(OAuthError::unsupported_grant_type());
    }
    let client_ip = http::source_ip(req);
    let client = authenticate(state, &creds, &client_ip, true, now).await?;
    if !client.allows_grant(grant) || (client.public && grant == GRANT_CLIENT_CREDENTIALS) {
        return Err(OAuthError::unauthorized_client());
    }
    let body = match grant {
        GRANT_CLIENT_CREDENTIALS => {
            let scope = granted_scope(&client, form.get("scope"))?;
            let issued =
                state
                    .tokens
                    .issue_oauth(&client.id, &client.id, &scope, client.token_ttl, now)?;
            tracing::info!(audit = "oauth_token_issued", client_id = %client.id, grant = grant, scope = %scope, client_ip = %client_ip, "oauth");
            let mut body = json!({
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": client.token_ttl,
            });
            // RFC 6749 §5.1: the granted scope; a client with no scopes is granted none, so
            // the member is left out rather than sent empty.
            if !scope.is_empty() {
                body["scope"] = json!(scope);
            }
            body
        }
        GRANT_AUTHORIZATION_CODE => code_grant(state, &client, &form, &client_ip, now).await?,
        GRANT_REFRESH_TOKEN => refresh_grant(state, &client, &form, &client_ip, now).await?,
        _ => return Err(OAuthError::unsupported_grant_type()),
    };
    if client
        .last_used_at
        .is_none_or(|at| now - at >= CLIENT_LAST_USED_INTERVAL)
        && let Err(e) = state
            .clients
            .touch(&client.id, now, CLIENT_LAST_USED_INTERVAL)
            .await
    {
        // Bookkeeping only: a failed write must not turn a valid client away.
        tracing::warn!(error = %e, client_id = %client.id, "client last-used update failed");
    }
    Ok(ok_json(&body))
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(400, "invalid_grant", description)
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// What a token response is bound to: the access token's id, the OIDC nonce, the refresh
/// family.
struct TokenIds<'a> {
    jti: String,
    nonce: Option<&'a str>,
    family: &'a str,
}

/// The token response for a user's grant to `client`: an access token (RFC 9068) with `jti`,
/// an ID token when `openid` was granted, and a refresh token in `family` when the client
/// may use refresh tokens (its hash stored: one PutItem, or the rotation's transaction
/// through `store_refresh`).
async fn user_tokens(
    state: &AppState,
    client: &ClientRecord,
    grant: &UserGrant<'_>,
    ids: TokenIds<'_>,
    store_refresh: impl AsyncFnOnce(&RefreshRecord) -> Result<(), OAuthError>,
    now: i64,
) -> Result<Value, OAuthError> {
    let TokenIds { jti, nonce, family } = ids;
    let access = state
        .tokens
        .issue_delegated(grant, jti, client.token_ttl, now)?;
    let mut body = json!({
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": client.token_ttl,
    });
    if !grant.scope.is_empty() {
        body["scope"] = json!(grant.scope);
    }
    if has_scope(grant.scope, "openid") {
        body["id_token"] = json!(state.tokens.issue_id_token(
            grant,
            nonce,
            &access.token,
            has_scope(grant.scope, "email"),
            now
        )?);
    }
    if client.allows_grant(GRANT_REFRESH_TOKEN) {
        let refresh = state.tokens.issue_oauth_refresh(grant, family, now)?;
        store_refresh(&RefreshRecord {
            token_hash: crate::ids::digest(&refresh.token),
            user_id: grant.user_id.to_owned(),
            email: grant.email.to_owned(),
            family_id: family.to_owned(),
            status: RefreshStatus::Active,
            created_at: refresh.claims.iat,
            expires_at: refresh.claims.exp,
            spent_at: None,
        })
        .await?;
        body["refresh_token"] = json!(refresh.token);
    }
    Ok(body)
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5): ONE conditional write
/// redeems the code only for this client, redirect URI and verifier; a second presentation
/// revokes what the first one issued (RFC 6749 §4.1.2). DynamoDB: the redemption UpdateItem
/// and the refresh token's PutItem (after the client read and the rate-limit write).
async fn code_grant(
    state: &AppState,
    client: &ClientRecord,
    form: &Form,
    client_ip: &str,
    now: i64,
) -> Result<Value, OAuthError> {
    let code = form.require("code")?;
    let redirect_uri = form.require("redirect_uri")?;
    let verifier = form.require("code_verifier")?;
    // RFC 7636 §4.1: 43 to 128 unreserved characters.
    if !(43..=128).contains(&verifier.len())
        || !verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(invalid_grant("the code_verifier is malformed"));
    }
    if code.len() > MAX_CREDENTIAL_LEN {
        return Err(invalid_grant("the code is invalid"));
    }
    let code_hash = crate::ids::digest(code);
    let jti = crate::ids::new_id("oat");
    let family = crate::ids::new_id("fam");
    let challenge = crate::web::s256(verifier);
    let refreshable = client.allows_grant(GRANT_REFRESH_TOKEN);
    let redemption = Redemption {
        client_id: &client.id,
        redirect_uri,
        challenge: &challenge,
        family_id: refreshable.then_some(family.as_str()),
        access_jti: &jti,
        access_exp: now + client.token_ttl,
    };
    let redeemed = match state.web.redeem_code(&code_hash, &redemption, now).await? {
        Ok(code) => code,
        Err(RedeemRefused::Replayed(first)) => {
            // The code was used before: whoever holds the tokens it bought may be an
            // attacker. Revoke them (the access token until it expires, the refresh family).
            if let (Some(jti), Some(exp)) = (&first.access_jti, first.access_exp) {
                state.revoked.revoke_jti(jti, exp, now).await?;
            }
            if let Some(fam) = &first.family_id {
                state.refresh_tokens.revoke_family(fam, None, now).await?;
            }
            tracing::warn!(audit = "authorization_code_replayed", client_id = %client.id, user_id = %first.user_id, client_ip = %client_ip, "oauth");
            return Err(invalid_grant(
                "the code is invalid, expired or already used",
            ));
        }
        Err(RedeemRefused::Invalid) => {
            tracing::info!(audit = "authorization_code_refused", client_id = %client.id, client_ip = %client_ip, "oauth");
            return Err(invalid_grant(
                "the code is invalid, expired or already used",
            ));
        }
    };
    let grant = UserGrant {
        user_id: &redeemed.user_id,
        email: &redeemed.email,
        client_id: &client.id,
        scope: &redeemed.scope,
        auth_time: redeemed.auth_time,
    };
    let body = user_tokens(
        state,
        client,
        &grant,
        TokenIds {
            jti,
            nonce: redeemed.nonce.as_deref(),
            family: &family,
        },
        async |record| Ok(state.refresh_tokens.put(record).await?),
        now,
    )
    .await?;
    tracing::info!(audit = "oauth_token_issued", client_id = %client.id, grant = GRANT_AUTHORIZATION_CODE, user_id = %redeemed.user_id, scope = %redeemed.scope, client_ip = %client_ip, "oauth");
    Ok(body)
}

/// `grant_type=refresh_token` (RFC 6749 §6): the same single-use rotation and reuse detection
/// as first-party refresh tokens, for this client's tokens only; `scope` may narrow, never
/// widen. DynamoDB: the user GetItem and the rotation's TransactWriteItems.
async fn refresh_grant(
    state: &AppState,
    client: &ClientRecord,
    form: &Form,
    client_ip: &str,
    now: i64,
) -> Result<Value, OAuthError> {
    let token = form.require("refresh_token")?;
    let invalid = || invalid_grant("the refresh token is invalid, expired or revoked");
    let claims = state
        .verify_token(token, TokenUse::Refresh, now)
        .await
        .map_err(|_| invalid())?;
    let (Some(family), Some(email), Some(granted), Some(auth_time)) = (
        claims.fam.as_deref(),
        claims.email.as_deref(),
        claims.scope.as_deref(),
        claims.auth_time,
    ) else {
        return Err(invalid());
    };
    if claims.client_id.as_deref() != Some(client.id.as_str()) {
        tracing::warn!(audit = "oauth_refresh_foreign_client", client_id = %client.id, client_ip = %client_ip, "oauth");
        return Err(invalid());
    }
    let scope = match form.get("scope") {
        None => granted.to_owned(),
        Some(asked) => {
            let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            if asked.is_empty() || !asked.iter().all(|s| has_scope(granted, s)) {
                return Err(OAuthError::invalid_scope(
                    "a refresh may only narrow the granted scope",
                ));
            }
            granted
                .split(' ')
                .filter(|s| asked.contains(s))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let user = match state.users.get(email).await? {
        Some(user) if user.id == claims.sub && user.session_allowed(claims.iat) => user,
        _ => return Err(invalid()),
    };
    let grant = UserGrant {
        user_id: &user.id,
        email: &user.email,
        client_id: &client.id,
        scope: &scope,
        auth_time,
    };
    let old_hash = crate::ids::digest(token);
    let body = user_tokens(
        state,
        client,
        &grant,
        TokenIds {
            jti: crate::ids::new_id("oat"),
            nonce: None,
            family,
        },
        async |record| {
            // No grace for third-party clients (RFC 9700 §4.14.2): a replay is reuse.
            crate::session::rotate_or_revoke(state, &old_hash, record, 0, client_ip, now)
                .await
                .map_err(|e| match e {
                    Error::InvalidRefreshToken => invalid(),
                    other => other.into(),
                })
        },
        now,
    )
    .await?;
    tracing::info!(audit = "oauth_token_issued", client_id = %client.id, grant = GRANT_REFRESH_TOKEN, user_id = %user.id, client_ip = %client_ip, "oauth");
    Ok(body)
}

/// `GET /oauth/userinfo` (OIDC Core §5.3): the user an access token with `openid` was issued
/// for. DynamoDB: the token's revocation entry, the user and the client (three GetItems,
/// concurrently): a revoked token, a user signed out everywhere or disabled, and a disabled
/// client all end it at once.
pub async fn userinfo(state: &AppState, req: &Request, now: i64) -> Response<Body> {
    // RFC 6750 §3: the error in the body and in the challenge.
    let bearer_error = |status: u16, error: &'static str, description: &'static str| {
        let mut resp = OAuthError::new(status, error, description).response();
        let challenge = format!(
            "Bearer realm=\"portcullis\", error=\"{error}\", error_description=\"{description}\""
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        let mut resp = OAuthError::new(405, "invalid_request", "use GET or POST").response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return resp;
    }
    let Some(token) = crate::handlers::bearer(req) else {
        let mut resp =
            OAuthError::new(401, "invalid_token", "a Bearer access token is required").response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis\""),
        );
        return resp;
    };
    let claims = match state.verify_token(token, TokenUse::OAuth, now).await {
        Ok(c) => c,
        Err(_) => {
            return bearer_error(
                401,
                "invalid_token",
                "the access token is invalid or expired",
            );
        }
    };
    let (Some(email), Some(scope)) = (claims.email.as_deref(), claims.scope.as_deref()) else {
        // A client credentials token: there is no user.
        return bearer_error(
            403,
            "insufficient_scope",
            "the token was not issued for a user",
        );
    };
    if !has_scope(scope, "openid") {
        return bearer_error(
            403,
            "insufficient_scope",
            "the token lacks the openid scope",
        );
    }
    let client_id = claims.client_id.as_deref().unwrap_or_default();
    let (revoked, user, client) = tokio::join!(
        state.revoked.is_jti_revoked(&claims.jti, claims.exp),
        state.users.get(email),
        state.clients.get(client_id)
    );
    let (revoked, user, client) = match (revoked, user, client) {
        (Ok(r), Ok(u), Ok(c)) => (r, u, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return OAuthError::from(e).response();
        }
    };
    let client_live = client.is_some_and(|c| !c.disabled);
    let user = match user {
        Some(u)
            if !revoked && client_live && u.id == claims.sub && u.session_allowed(claims.iat) =>
        {
            u
        }
        _ => {
            return bearer_error(
                401,
                "invalid_token",
                "the access token is invalid or expired",
            );
        }
    };
    let mut body = json!({"sub": user.id});
    if has_scope(scope, "email") {
        body["email"] = json!(user.email);
    }
    ok_json(&body)
}

/// Verify an OAuth access token of `client` that is still in force: signature, expiry, the
/// client it was issued to, and its revocation entry (one consistent GetItem). `None` for
/// anything else, whatever the reason (RFC 7662 §2.2 tells the caller no more). A disabled
/// client needs no check here: it cannot authenticate, so it never gets this far.
async fn active_token_of(
    state: &AppState,
    client: &ClientRecord,
    token: &str,
    now: i64,
) -> Result<Option<crate::token::Claims>, OAuthError> {
    let claims = match state.verify_token(token, TokenUse::OAuth, now).await {
        Ok(claims) => claims,
        Err(TokenError::Invalid | TokenError::Expired | TokenError::UnknownKey) => return Ok(None),
    };
    if claims.client_id.as_deref() != Some(client.id.as_str()) {
        return Ok(None);
    }
    let revoked = state
        .revoked
        .is_jti_revoked(&claims.jti, claims.exp)
        .await?;
    Ok((!revoked).then_some(claims))
}

/// The shared start of introspection and revocation: a form with a `token`, checked by
/// `check` before anything is read, then the client authenticated (not rate-counted: these
/// endpoints issue nothing).
async fn token_request(
    state: &AppState,
    req: &Request,
    check: impl Fn(&Form) -> Result<(), OAuthError>,
    now: i64,
) -> Result<(Form, ClientRecord), OAuthError> {
    let form = request_form(req)?;
    let creds = client_credentials(req, &form)?;
    form.require("token")?;
    check(&form)?;
    let client = authenticate(state, &creds, &http::source_ip(req), false, now).await?;
    Ok((form, client))
}

/// `POST /oauth/introspect` (RFC 7662): `{"active": false}` for anything not active and
/// issued to the calling client; the token's members otherwise.
pub async fn introspect(
    state: &AppState,
    req: &Request,
    now: i64,
) -> Result<Response<Body>, OAuthError> {
    let (form, client) = token_request(state, req, |_| Ok(()), now).await?;
    if client.public {
        // RFC 7662 §2.1: introspection needs an authorized caller; a public client proves
        // nothing about itself.
        return Err(OAuthError::invalid_client());
    }
    let Some(claims) = active_token_of(state, &client, form.require("token")?, now).await? else {
        return Ok(ok_json(&json!({"active": false})));
    };
    let mut body = json!({
        "active": true,
        "client_id": claims.client_id,
        "token_type": "Bearer",
        "exp": claims.exp,
        "iat": claims.iat,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "jti": claims.jti,
    });
    if let Some(scope) = claims.scope.filter(|s| !s.is_empty()) {
        body["scope"] = json!(scope);
    }
    Ok(ok_json(&body))
}

/// `POST /oauth/revoke` (RFC 7009): revoke an access token of the calling client until it
/// expires. 200 for tokens that are unknown, invalid, expired or already revoked (§2.2); a
/// hint other than the two the RFC defines is `unsupported_token_type`.
pub async fn revoke(
    state: &AppState,
    req: &Request,
    now: i64,
) -> Result<Response<Body>, OAuthError> {
    let hint = |form: &Form| match form.get("token_type_hint") {
        None | Some("access_token" | "refresh_token") => Ok(()),
        Some(_) => Err(OAuthError::new(
            400,
            "unsupported_token_type",
            "token_type_hint must be access_token or refresh_token",
        )),
    };
    let (form, client) = token_request(state, req, hint, now).await?;
    let token = form.require("token")?;
    // A refresh token of this client ends its whole family (RFC 7009 §2.1: and SHOULD the
    // access tokens of the grant, which expire within their short lifetime).
    if let Ok(claims) = state.verify_token(token, TokenUse::Refresh, now).await
        && claims.client_id.as_deref() == Some(client.id.as_str())
        && let Some(family) = claims.fam.as_deref()
    {
        let revoked = state
            .refresh_tokens
            .revoke_family(family, Some(&crate::ids::digest(token)), now)
            .await?;
        tracing::info!(audit = "oauth_refresh_revoked", client_id = %client.id, family_id = %family, revoked, "oauth");
    } else if let Some(claims) = active_token_of(state, &client, token, now).await? {
        state
            .revoked
            .revoke_jti(&claims.jti, claims.exp, now)
            .await?;
        tracing::info!(audit = "oauth_token_revoked", client_id = %client.id, jti = %claims.jti, "oauth");
    }
    let mut resp = ok_json(&json!({}));
    *resp.body_mut() = Body::Empty;
    resp.headers_mut().remove(header::CONTENT_TYPE);
    Ok(resp)
}

/// Disable a client: its secret stops working at once (the flag, read consistently at every
/// authentication), and every token it holds is listed as revoked for as long as one can
/// live, so the authorizer refuses them within `REVOCATION_REFRESH_SECONDS`. `false` when
/// there is no such client.
pub async fn disable_client(
    clients: &crate::store::ClientStore,
    revoked: &crate::store::RevokedStore,
    id: &str,
    leeway: i64,
    now: i64,
) -> Result<bool, crate::error::StoreError> {
    let Some(client) = clients.disable(id).await? else {
        return Ok(false);
    };
    // Cut-off one second ahead: unlike a user signing out everywhere, a disabled client gets
    // no new token afterwards, so even one issued in this very second must stop.
    revoked
        .revoke_user(&client.id, now + 1, client.token_ttl + leeway)
        .await?;
    tracing::info!(audit = "oauth_client_disabled", client_id = %client.id, "oauth");
    Ok(true)
}

/// The `oauth` function: one handler for the OAuth endpoints, chosen by the path's ending
/// (`.../oauth/token`, `.../oauth/revoke`, `.../oauth/introspect`).
pub async fn handle(state: &AppState, req: Request, now: i64) -> Response<Body> {
    let path = crate::http::route_path(&req);
    let result = if path.ends_with("/oauth/token") {
        token(state, &req, now).await
    } else if path.ends_with("/oauth/revoke") {
        revoke(state, &req, now).await
    } else if path.ends_with("/oauth/introspect") {
        introspect(state, &req, now).await
    } else if path.ends_with("/oauth/userinfo") {
        Ok(userinfo(state, &req, now).await)
    } else {
        Err(OAuthError::new(404, "invalid_request", "no such endpoint"))
    };
    result.unwrap_or_else(|e| e.response())
}

/// The OAuth members of the metadata documents (RFC 8414 §2), shared by
/// `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub fn metadata(config: &crate::config::Config) -> Value {
    let base = &config.oauth_endpoint_base;
    let mut doc = json!({
        "issuer": config.jwt_issuer,
        "jwks_uri": config.jwks_uri,
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "authorization_endpoint": format!("{}/oauth/authorize", config.web_base_url),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "grant_types_supported": SUPPORTED_GRANTS,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
    });
    if !config.oauth_scopes_supported.is_empty()
        && let Some(map) = doc.as_object_mut()
    {
        map.insert(
            "scopes_supported".into(),
            json!(config.oauth_scopes_supported),
        );
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(scopes: &[&str]) -> ClientRecord {
        crate::store::clients::generate(
            "c",
            vec![GRANT_CLIENT_CREDENTIALS.into()],
            scopes.iter().map(|s| s.to_string()).collect(),
            900,
            0,
        )
        .record
    }

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder().method("POST");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::Text(body.into())).unwrap()
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    #[test]
    fn forms_refuse_repeats_and_drop_empty_values() {
        let form = Form::parse(b"grant_type=client_credentials&scope=&x=a+b%21").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("x"), Some("a b!"));
        let err = Form::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!((err.status, err.error), (400, "invalid_request"));
        assert!(err.description.contains("scope"));
        assert_eq!(form.require("nope").unwrap_err().error, "invalid_request");
    }

    #[test]
    fn only_form_posts_are_read() {
        let json_body = request(
            &[("content-type", "application/json")],
            r#"{"grant_type":"x"}"#,
        );
        assert_eq!(request_form(&json_body).unwrap_err().status, 400);
        let with_charset = request(
            &[(
                "content-type",
                "application/x-www-form-urlencoded;charset=UTF-8",
            )],
            "a=b",
        );
        assert_eq!(request_form(&with_charset).unwrap().get("a"), Some("b"));
        let get = lambda_http::http::Request::builder()
            .method("GET")
            .header(FORM.0, FORM.1)
            .body(Body::Empty)
            .unwrap();
        let err = request_form(&get).unwrap_err();
        assert_eq!(err.status, 405);
        assert_eq!(err.response().headers()[header::ALLOW], "POST");
        let big = request(&[FORM], &"a".repeat(MAX_BODY_BYTES + 1));
        assert_eq!(request_form(&big).unwrap_err().status, 413);
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded_and_exactly_one_method_is_used() {
        // RFC 6749 §2.3.1: each part form-urlencoded before base64 (openid-client does it).
        let req = request(&[FORM, ("authorization", &basic("cl%5Fab", "s%3Ac+d"))], "");
        let creds = client_credentials(&req, &Form::default()).unwrap();
        assert_eq!(
            (creds.id.as_str(), creds.secret.as_str()),
            ("cl_ab", "s:c d")
        );
        assert!(!format!("{creds:?}").contains("s:c d"));

        let form = Form::parse(b"client_id=cl_x&client_secret=cs_y").unwrap();
        let post = client_credentials(&request(&[FORM], ""), &form).unwrap();
        assert_eq!((post.id.as_str(), post.secret.as_str()), ("cl_x", "cs_y"));

        let both = request(&[FORM, ("authorization", &basic("cl_x", "cs_y"))], "");
        assert_eq!(
            client_credentials(&both, &form).unwrap_err().error,
            "invalid_request"
        );
        let none = client_credentials(&request(&[FORM], ""), &Form::default()).unwrap_err();
        assert_eq!((none.status, none.error), (401, "invalid_client"));
        let resp = none.response();
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            r#"Basic realm="portcullis""#
        );
        for bad in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic "] {
            let req = request(&[FORM, ("authorization", bad)], "");
            assert_eq!(
                client_credentials(&req, &Form::default())
                    .unwrap_err()
                    .error,
                "invalid_client",
                "{bad}"
            );
        }
        let mismatched = Form::parse(b"client_id=cl_other").unwrap();
        let req = request(&[FORM, ("authorization", &basic("cl_x", "cs_y"))], "");
        assert_eq!(
            client_credentials(&req, &mismatched).unwrap_err().error,
            "invalid_request"
        );
    }

    #[test]
    fn scopes_are_a_subset_of_the_clients() {
        let c = client(&["orders:read", "orders:write", "stock"]);
        assert_eq!(
            granted_scope(&c, None).unwrap(),
            "orders:read orders:write stock"
        );
        assert_eq!(
            granted_scope(&c, Some("stock  orders:read stock")).unwrap(),
            "orders:read stock"
        );
        for bad in ["admin", "orders:read admin", "  ", "a\"b", "x\\y"] {
            let err = granted_scope(&c, Some(bad)).unwrap_err();
            assert_eq!((err.status, err.error), (400, "invalid_scope"), "{bad}");
        }
    }

    #[test]
    fn errors_have_the_rfc_shape_and_no_detail() {
        let err: OAuthError = Error::Unavailable("table down at 10.0.0.1".into()).into();
        let resp = err.response();
        assert_eq!(resp.status(), 503);
        let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(!body.to_string().contains("10.0.0.1"));
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        let limited: OAuthError = Error::RateLimited { retry_after: 7 }.into();
        let resp = limited.response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    }
}
