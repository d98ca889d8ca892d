//! Entrypoints: event -> domain call -> response. Each function's `main` only wires one of
//! these to the runtime.

use lambda_http::http::{HeaderValue, Method, header};
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::cookies;
use crate::error::Error;
use crate::http::{
    self, data_response, header_str, json_object, optional_str, require_method, required_str,
    respond,
};
use crate::login::{self, Credentials};
use crate::session::{self, LogoutScope};
use crate::state::AppState;

/// The state of this process, built at the first cold start that succeeds (see `serve`).
static STATE: tokio::sync::OnceCell<AppState> = tokio::sync::OnceCell::const_new();

/// Run an HTTP function: build the state once (cold start), then serve every request with
/// the system clock. Generic over the handler, so each binary links only its own handler
/// and what that handler uses.
///
/// A missing or bad variable fails the cold start, naming it. A store that cannot be
/// reached does not: every request retries the start and, while it fails, answers 503
/// (fail closed, no crash loop).
pub async fn serve<H, F>(handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static AppState, Request, i64) -> F + Sync,
    F: std::future::Future<Output = Response<Body>> + Send,
{
    serve_with(handler, http::error_response).await
}

/// `serve`, with the function's own answer while the state cannot be built (the OAuth
/// endpoints answer in the RFCs' format, not the envelope).
pub async fn serve_with<H, F>(
    handler: H,
    unavailable: fn(&Error) -> Response<Body>,
) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static AppState, Request, i64) -> F + Sync,
    F: std::future::Future<Output = Response<Body>> + Send,
{
    let clock = crate::state::ColdStart::begin();
    lambda_http::tracing::init_default_subscriber();
    let config =
        crate::config::Config::from_env().map_err(|e| crate::state::StartupError(e.to_string()))?;
    let config_us = clock.micros();
    let aws = crate::state::AwsClients::load().await;
    let clients_us = clock.micros();
    let start = || AppState::start(config.clone(), aws.clone());
    if let Err(e) = STATE.get_or_try_init(start).await {
        tracing::error!(error = %e, "cold start incomplete; answering 503 until it succeeds");
    }
    clock.log(config_us, clients_us);
    let (start, handler) = (&start, &handler);
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        let now = crate::state::now();
        let state = match STATE.get_or_try_init(start).await {
            Ok(state) => state,
            Err(e) => return Ok(unavailable(&Error::Unavailable(e.to_string()))),
        };
        state.refresh_keys_if_stale(now).await;
        Ok::<_, lambda_http::Error>(handler(state, req, now).await)
    }))
    .await
}

/// Run an HTTP function that needs no configuration, AWS client or key (whoami): nothing
/// but the runtime loop.
pub async fn serve_stateless(
    handler: fn(Request) -> Response<Body>,
) -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(handler(req))
    }))
    .await
}

fn with_cookies(mut resp: Response<Body>, cookies: Vec<String>) -> Response<Body> {
    for value in cookies {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// In cookie mode, hand the new refresh token (and a new CSRF token) to the browser too.
pub(crate) fn with_session_cookies(
    state: &AppState,
    resp: Response<Body>,
    refresh_token: &str,
) -> Response<Body> {
    if !state.config.refresh_cookie {
        return resp;
    }
    let cookies = cookies::set_session_cookies(
        refresh_token,
        state.config.refresh_token_ttl,
        &state.config.refresh_cookie_path,
    );
    with_cookies(resp, cookies)
}

/// The body as a JSON object, or an empty object when there is no body at all.
fn optional_json_object(
    req: &Request,
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    json_object(req)
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    let value = header_str(req, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// `POST` login (function URL or `POST /auth/login`).
pub async fn login(state: &AppState, req: Request, now: i64) -> Response<Body> {
    respond(login_inner(state, &req, now).await)
}

async fn login_inner(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    require_method(req, Method::POST, "POST")?;
    let body = json_object(req)?;
    let credentials = Credentials {
        email: required_str(&body, "email")?.to_owned(),
        password: required_str(&body, "password")?.to_owned(),
    };
    let out = login::login(state, &credentials, &http::source_ip(req), now).await?;
    Ok(with_session_cookies(
        state,
        data_response(200, &out),
        &out.tokens.refresh_token,
    ))
}

/// `POST` refresh: `{"refreshToken"}`, or the refresh cookie (+ CSRF header) in cookie mode.
pub async fn refresh(state: &AppState, req: Request, now: i64) -> Response<Body> {
    respond(refresh_inner(state, &req, now).await)
}

async fn refresh_inner(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    require_method(req, Method::POST, "POST")?;
    let body = optional_json_object(req)?;
    let token = match optional_str(&body, "refreshToken")? {
        Some(token) if !token.is_empty() => token.to_owned(),
        Some(_) => return Err(Error::MissingRefreshToken),
        None => match state
            .config
            .refresh_cookie
            .then(|| cookies::request_cookie(req, cookies::REFRESH_COOKIE))
            .flatten()
        {
            Some(token) => {
                cookies::check_csrf(req)?;
                token
            }
            None => return Err(Error::MissingRefreshToken),
        },
    };
    let out = session::refresh(state, &token, &http::source_ip(req), now).await?;
    let resp = data_response(200, &json!({"tokens": out.tokens}));
    Ok(with_session_cookies(state, resp, &out.tokens.refresh_token))
}

/// `POST` logout: `Authorization: Bearer` + `{"refreshToken"}` or `{"allSessions": true}`.
pub async fn logout(state: &AppState, req: Request, now: i64) -> Response<Body> {
    respond(logout_inner(state, &req, now).await)
}

async fn logout_inner(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    require_method(req, Method::POST, "POST")?;
    let body = optional_json_object(req)?;
    let all = match body.get("allSessions") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(Error::validation("field `allSessions` must be a boolean")),
    };
    let body_token = optional_str(&body, "refreshToken")?
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let cookie_token = state
        .config
        .refresh_cookie
        .then(|| cookies::request_cookie(req, cookies::REFRESH_COOKIE))
        .flatten();
    let scope_token = body_token.or(cookie_token);
    let scope = match (&scope_token, all) {
        (_, true) => LogoutScope::All,
        (Some(token), false) => LogoutScope::Session(token),
        (None, false) => {
            // Authenticate first so a bearer problem is reported as such.
            if bearer(req).is_none() {
                return Err(Error::MissingToken);
            }
            return Err(Error::MissingRefreshToken);
        }
    };
    session::logout(state, bearer(req), scope, &http::source_ip(req), now).await?;
    let resp = http::no_content();
    Ok(if state.config.refresh_cookie {
        with_cookies(
            resp,
            cookies::clear_session_cookies(&state.config.refresh_cookie_path),
        )
    } else {
        resp
    })
}

/// `POST` (or `GET`) validate-key: `x-api-key` -> the key's id, name, scopes and expiry.
pub async fn validate_key(state: &AppState, req: Request, now: i64) -> Response<Body> {
    respond(validate_key_inner(state, &req, now).await)
}

async fn validate_key_inner(
    state: &AppState,
    req: &Request,
    now: i64,
) -> Result<Response<Body>, Error> {
    if req.method() != Method::POST && req.method() != Method::GET {
        return Err(Error::MethodNotAllowed { allow: "GET, POST" });
    }
    let ttl = state.config.validate_key_cache;
    let key = header_str(req, "x-api-key");
    let info = state.key_cache.validate(state, key, ttl, now).await?;
    Ok(data_response(200, &json!({"valid": true, "key": info})))
}

/// The principal the authorizer passed on (REST: `requestContext.authorizer`; HTTP API:
/// `requestContext.authorizer.lambda`). Values are strings.
pub fn authorizer_context(req: &Request) -> serde_json::Map<String, serde_json::Value> {
    use lambda_http::RequestExt as _;
    use lambda_http::request::RequestContext;
    let mut out = serde_json::Map::new();
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            if let Some(auth) = &ctx.authorizer {
                out.extend(auth.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                // Behind API Gateway's built-in JWT authorizer: the verified claims.
                if let Some(jwt) = auth.jwt.as_ref().filter(|_| out.is_empty()) {
                    let claim = |name: &str| jwt.claims.get(name).cloned().unwrap_or_default();
                    if jwt.claims.get("token_use").map(String::as_str) == Some("access") {
                        out.insert("principalId".into(), claim("sub").into());
                        out.insert("userId".into(), claim("sub").into());
                        out.insert("email".into(), claim("email").into());
                        out.insert("role".into(), claim("role").into());
                        out.insert("scopes".into(), "".into());
                        out.insert("authType".into(), "jwt".into());
                    }
                }
            }
        }
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            out.extend(
                ctx.authorizer
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            out.extend(
                ctx.authorizer
                    .other
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        _ => {}
    }
    out.retain(|k, v| v.is_string() && !matches!(k.as_str(), "integrationLatency"));
    out
}

/// How long clients may cache the key set: shorter than the key pick-up interval, so a
/// rotated-in key is seen by verifiers before any token signed with it is likely.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// `GET /.well-known/jwks.json`, `GET /.well-known/openid-configuration` and
/// `GET /.well-known/oauth-authorization-server` (RFC 8414; the same OAuth members as the
/// OpenID document): the only JSON handler whose answer depends on the path.
pub async fn jwks(state: &AppState, req: Request, _now: i64) -> Response<Body> {
    respond(jwks_inner(state, &req))
}

fn jwks_inner(state: &AppState, req: &Request) -> Result<Response<Body>, Error> {
    let path = http::route_path(req);
    let path = path.as_str();
    let document = if path.ends_with("/.well-known/jwks.json") {
        require_method(req, Method::GET, "GET")?;
        state.tokens.ring().public_jwks()
    } else if path.ends_with("/.well-known/openid-configuration") {
        require_method(req, Method::GET, "GET")?;
        let mut doc = crate::oauth::metadata(&state.config);
        if let Some(map) = doc.as_object_mut() {
            map.insert(
                "id_token_signing_alg_values_supported".into(),
                json!(state.tokens.ring().public_algorithms()),
            );
            map.insert("subject_types_supported".into(), json!(["public"]));
            // The scopes OIDC defines that this server understands, whatever else is listed.
            let mut scopes = state.config.oauth_scopes_supported.clone();
            for s in ["openid", "email"] {
                if !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_owned());
                }
            }
            map.insert("scopes_supported".into(), json!(scopes));
            map.insert(
                "claims_supported".into(),
                json!([
                    "iss",
                    "sub",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "at_hash",
                    "azp",
                    "email"
                ]),
            );
            map.insert("claims_parameter_supported".into(), json!(false));
            map.insert("request_parameter_supported".into(), json!(false));
            map.insert("request_uri_parameter_supported".into(), json!(false));
        }
        doc
    } else if path.ends_with("/.well-known/oauth-authorization-server") {
        require_method(req, Method::GET, "GET")?;
        crate::oauth::metadata(&state.config)
    } else {
        return Err(Error::NotFound);
    };
    Ok(http::document_response(&document, JWKS_CACHE_CONTROL))
}

/// `GET` whoami: an example protected route that echoes the authorizer's principal.
pub fn whoami(req: Request) -> Response<Body> {
    respond(whoami_inner(&req))
}

fn whoami_inner(req: &Request) -> Result<Response<Body>, Error> {
    require_method(req, Method::GET, "GET")?;
    let principal = authorizer_context(req);
    if !principal.contains_key("principalId") {
        // Reached without the authorizer in front: refuse rather than guess.
        return Err(Error::MissingToken);
    }
    Ok(data_response(200, &json!({"principal": principal})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> Request {
        lambda_http::http::Request::builder()
            .header("authorization", value)
            .body(Body::Empty)
            .unwrap()
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&with_auth("Bearer a.b.c")), Some("a.b.c"));
        assert_eq!(bearer(&with_auth("bearer a.b.c ")), Some("a.b.c"));
        assert_eq!(bearer(&with_auth("Basic abc")), None);
        assert_eq!(bearer(&with_auth("Bearer ")), None);
        assert_eq!(bearer(&with_auth("Bearer")), None);
    }
}
