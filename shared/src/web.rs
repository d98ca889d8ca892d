//! The `web` function: browser sign-in with server-side sessions, and the OAuth 2.0
//! authorization endpoint (RFC 6749 §4.1 with PKCE, RFC 7636, S256 only; RFC 9700) with its
//! consent page. Server-rendered HTML, no JavaScript.
//!
//! Sessions: a 256-bit random id in `__Host-portcullis-session` (HttpOnly, Secure,
//! SameSite=Lax, Path=/), stored only as its SHA-256, with an idle and an absolute timeout
//! checked in code (TTL deletes lazily). Every sign-in makes a new id and ends the session
//! the browser had (no fixation).
//!
//! CSRF: the synchronizer token pattern, derived rather than stored. The token of a session is
//! `base64url(SHA-256("portcullis-csrf:" + session id))`: the forms of a signed-in page carry
//! it, the `__Host-portcullis-csrf` cookie (readable, for pages that call APIs through the
//! authorizer with `x-csrf-token`) carries it, and the server recomputes it from the session
//! cookie — so it costs no storage and no read, and a leaked table (which holds a different
//! digest of the id) yields no token. Before sign-in there is no session, so the sign-in form
//! uses a double-submit token in `__Host-portcullis-signin` (HttpOnly): the `__Host-` prefix
//! is what makes plain double-submit sound — no subdomain and no plain-HTTP page can plant
//! that cookie. On top of both, every unsafe request must carry an `Origin` (or `Referer`)
//! of `WEB_BASE_URL`'s origin.
//!
//! DynamoDB per request: sign-in = login's (rate limit + user, concurrently; a failure
//! counter write when wrong) + the session PutItem (+ a DeleteItem of the browser's previous
//! session); authorize with a session = session and client GetItems (concurrently), the
//! consent GetItem, the code PutItem (+ a last-seen UpdateItem at most once a minute);
//! consent = the same with a consent PutItem; sign-out = session GetItem + DeleteItem.

use std::sync::OnceLock;

use base64::Engine as _;
use cookie::{Cookie, SameSite};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::cookies::request_cookie;
use crate::error::Error;
use crate::http::{self, MAX_BODY_BYTES, header_str};
use crate::login::Credentials;
use crate::oauth::{Form, OAuthError, granted_scope, looks_like_client_id};
use crate::state::AppState;
use crate::store::clients::GRANT_AUTHORIZATION_CODE;
use crate::store::web::WebSession;
use crate::store::{AuthCode, ClientRecord};

pub const SESSION_COOKIE: &str = "__Host-portcullis-session";
pub const CSRF_COOKIE: &str = "__Host-portcullis-csrf";
pub const SIGNIN_COOKIE: &str = "__Host-portcullis-signin";
/// The header an API call authenticated by the session cookie carries on unsafe methods.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Authorization codes live this long (RFC 6749 §4.1.2 recommends at most 10 minutes;
/// the issue asks for at most 60 s).
pub const CODE_TTL: i64 = 60;
/// How long a sign-in form stays usable (its double-submit cookie's lifetime).
const SIGNIN_FORM_TTL: i64 = 3600;
/// Longest `return_to` (an authorization request's query string) we carry through sign-in.
const MAX_RETURN_TO: usize = 4096;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// 256 random bits, base64url (43 characters): session ids, codes, form tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    b64(&bytes)
}

fn looks_like_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The CSRF token of a session (see the module docs).
pub fn csrf_token(session_id: &str) -> String {
    b64(&Sha256::digest(format!("portcullis-csrf:{session_id}")))
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The PKCE S256 transform (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}

/// A signed-in browser: the session id from its cookie and the stored session.
#[derive(Clone)]
pub struct SignedIn {
    pub id: String,
    pub session: WebSession,
}

impl std::fmt::Debug for SignedIn {
    /// The id is the browser's credential: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("id", &"<redacted>")
            .field("session", &self.session)
            .finish()
    }
}

/// The live session the request's cookie names, if any: one consistent GetItem (none without
/// a well-formed cookie), plus a last-seen write at most once per `SESSION_TOUCH_INTERVAL`.
/// Shared with the authorizer.
pub async fn session_of(
    state: &AppState,
    cookie_value: Option<&str>,
    now: i64,
) -> Result<Option<SignedIn>, Error> {
    let Some(id) = cookie_value.filter(|v| looks_like_token(v)) else {
        return Ok(None);
    };
    let hash = crate::ids::digest(id);
    let Some(session) = state.web.session(&hash).await? else {
        return Ok(None);
    };
    if !session.is_live(now, state.config.session_idle) {
        return Ok(None);
    }
    if session.needs_touch(now)
        && let Err(e) = state.web.touch_session(&hash, now).await
    {
        // Bookkeeping: the session was read and is live, so this request goes on.
        tracing::warn!(error = %e, "session last-seen update failed");
    }
    Ok(Some(SignedIn {
        id: id.to_owned(),
        session,
    }))
}

// ---------------------------------------------------------------------------------------
// HTML

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1c2430;\
background:linear-gradient(160deg,#eef2f8 0%,#dde5f1 100%)}\
main{width:100%;max-width:400px;margin:24px;background:#fff;border-radius:14px;\
box-shadow:0 10px 30px rgba(28,36,48,.12);padding:36px 32px}\
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:15px;\
letter-spacing:.02em;color:#31405a;margin-bottom:24px}\
.mark{width:28px;height:28px;border-radius:7px;background:#2f5bea;color:#fff;display:flex;\
align-items:center;justify-content:center;font-size:15px}\
h1{font-size:22px;margin:0 0 6px}\
p{margin:0 0 18px;color:#4a5568}\
label{display:block;font-weight:600;font-size:14px;margin:14px 0 6px}\
input[type=email],input[type=password]{width:100%;padding:11px 12px;font-size:16px;\
border:1px solid #c5cedb;border-radius:8px}\
input:focus{outline:3px solid #b9cbfa;border-color:#2f5bea}\
button{width:100%;margin-top:22px;padding:12px;font-size:16px;font-weight:600;border:0;\
border-radius:8px;background:#2f5bea;color:#fff;cursor:pointer}\
button:focus{outline:3px solid #b9cbfa}\
button.secondary{background:#fff;color:#31405a;border:1px solid #c5cedb;margin-top:10px}\
.error{background:#fdecec;color:#9b1c1c;border:1px solid #f5c2c2;border-radius:8px;\
padding:10px 12px;font-size:14px}\
ul.scopes{list-style:none;padding:0;margin:0 0 8px}\
ul.scopes li{padding:10px 12px;border:1px solid #e2e8f0;border-radius:8px;margin-bottom:8px;\
font-size:15px}\
ul.scopes code{font-size:13px;color:#64748b}\
.who{font-size:14px;color:#64748b;margin-top:18px}\
.fine{font-size:13px;color:#64748b;margin-top:18px}";

fn style_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()))
    })
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} · Portcullis</title><style>{CSS}</style></head><body><main>\
<div class=\"brand\"><span class=\"mark\" aria-hidden=\"true\">P</span>Portcullis</div>{body}\
</main></body></html>",
        esc(title)
    )
}

/// An HTML response with the headers every page carries: no caching, no framing
/// (X-Frame-Options and CSP `frame-ancestors`), no script at all, no MIME sniffing.
fn html(status: u16, title: &str, body: &str) -> Response<Body> {
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; frame-ancestors 'none'; base-uri 'none'",
        style_hash()
    );
    let mut resp = Response::new(Body::Text(layout(title, body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    resp
}

fn with_cookies(mut resp: Response<Body>, cookies: &[String]) -> Response<Body> {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

fn cookie(name: &str, value: &str, http_only: bool, max_age: i64) -> String {
    Cookie::build((name.to_owned(), value.to_owned()))
        .http_only(http_only)
        .secure(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
        .to_string()
}

fn expired_cookie(name: &str, http_only: bool) -> String {
    cookie(name, "", http_only, 0)
}

/// A page that explains a request we will not act on (never a redirect: RFC 6749 §4.1.2.1
/// forbids redirecting to an unverified URI).
fn error_page(status: u16, heading: &str, detail: &str) -> Response<Body> {
    html(
        status,
        heading,
        &format!(
            "<h1>{}</h1><p role=\"alert\" class=\"error\">{}</p>\
<p class=\"fine\">Go back to the application you came from and try again.</p>",
            esc(heading),
            esc(detail)
        ),
    )
}

fn forbidden() -> Response<Body> {
    error_page(
        403,
        "Request refused",
        "This request could not be verified as coming from this site. Reload the page and try again.",
    )
}

fn unavailable() -> Response<Body> {
    let mut resp = error_page(
        503,
        "Temporarily unavailable",
        "Sign-in is temporarily unavailable. Please try again in a moment.",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The answer while a cold start cannot complete (`handlers::serve_with`).
pub fn unavailable_response(_err: &Error) -> Response<Body> {
    unavailable()
}

fn signin_page(
    status: u16,
    base: &str,
    csrf: &str,
    return_to: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> Response<Body> {
    let alert = error
        .map(|e| format!("<p role=\"alert\" class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let lead = if return_to.is_some() {
        "Sign in to continue to the application."
    } else {
        "Sign in to your account."
    };
    html(
        status,
        "Sign in",
        &format!(
            "<h1>Sign in</h1><p>{lead}</p>{alert}\
<form method=\"post\" action=\"{base}/auth/signin\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"return_to\" value=\"{rt}\">\
<label for=\"email\">Email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
            base = esc(base),
            csrf = esc(csrf),
            rt = esc(return_to.unwrap_or_default()),
            email = esc(email),
        ),
    )
}

fn signed_in_page(base: &str, signed_in: &SignedIn) -> Response<Body> {
    html(
        200,
        "Signed in",
        &format!(
            "<h1>You are signed in</h1><p>Signed in as <strong>{email}</strong>.</p>\
<form method=\"post\" action=\"{base}/auth/signout\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" class=\"secondary\">Sign out</button></form>",
            email = esc(&signed_in.session.email),
            base = esc(base),
            csrf = csrf_token(&signed_in.id),
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Request plumbing

/// Whether an unsafe request comes from our own pages: `Origin` (or, without it, `Referer`)
/// must be `WEB_BASE_URL`'s origin. Browsers send `Origin` on every cross-origin and every
/// form POST; a request with neither header is refused.
fn same_origin(req: &Request, base: &str) -> bool {
    let origin = origin_of(base);
    match (header_str(req, "origin"), header_str(req, "referer")) {
        (Some(o), _) => o == origin,
        (None, Some(r)) => r
            .strip_prefix(origin)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        (None, None) => false,
    }
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The form body of a POST from one of our pages.
fn page_form(req: &Request) -> Result<Form, Box<Response<Body>>> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Box::new(error_page(
            413,
            "Request too large",
            "The form was too large.",
        )));
    }
    let media = header_str(req, "content-type")
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Box::new(error_page(
            415,
            "Unsupported form",
            "The form must be sent as application/x-www-form-urlencoded.",
        )));
    }
    Form::parse(bytes).map_err(|e| Box::new(error_page(400, "Invalid request", &e.description)))
}

fn query_form(req: &Request) -> Result<Form, OAuthError> {
    Form::parse(req.uri().query().unwrap_or_default().as_bytes())
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error_page(
        405,
        "Method not allowed",
        "This page does not accept that method.",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// The `web` function: one handler for the pages, chosen by the path's ending.
pub async fn handle(state: &AppState, req: Request, now: i64) -> Response<Body> {
    let path = http::route_path(&req);
    let method = req.method().clone();
    let result = if path.ends_with("/auth/signin") {
        match method {
            Method::GET => signin_get(state, &req, now).await,
            Method::POST => signin_post(state, &req, now).await,
            _ => Ok(method_not_allowed("GET, POST")),
        }
    } else if path.ends_with("/auth/signout") {
        match method {
            Method::POST => signout(state, &req, now).await,
            _ => Ok(method_not_allowed("POST")),
        }
    } else if path.ends_with("/oauth/authorize") {
        match method {
            Method::GET => authorize(state, &req, now).await,
            _ => Ok(method_not_allowed("GET")),
        }
    } else if path.ends_with("/oauth/consent") {
        match method {
            Method::POST => consent(state, &req, now).await,
            _ => Ok(method_not_allowed("POST")),
        }
    } else {
        Ok(error_page(404, "Not found", "There is no such page."))
    };
    result.unwrap_or_else(|e| match e {
        Error::Unavailable(detail) => {
            tracing::error!(error = %detail, "web: store unavailable");
            unavailable()
        }
        other => {
            tracing::error!(error = %other, "web: internal error");
            error_page(500, "Something went wrong", "Please try again.")
        }
    })
}

// ---------------------------------------------------------------------------------------
// Sign-in and sign-out

fn valid_return_to(value: Option<&str>) -> Option<&str> {
    value.filter(|v| v.len() <= MAX_RETURN_TO && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// Where a signed-in browser goes next: back into the authorization request it came with
/// (always our own authorize endpoint: `return_to` is only ever its query string, so this is
/// no open redirect), else the signed-in page.
fn after_signin(base: &str, return_to: Option<&str>) -> String {
    match return_to {
        Some(q) => format!("{base}/oauth/authorize?{q}"),
        None => format!("{base}/auth/signin"),
    }
}

fn fresh_signin_form(
    status: u16,
    base: &str,
    return_to: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> Response<Body> {
    let token = random_token();
    with_cookies(
        signin_page(status, base, &token, return_to, email, error),
        &[cookie(SIGNIN_COOKIE, &token, true, SIGNIN_FORM_TTL)],
    )
}

async fn signin_get(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let base = &state.config.web_base_url;
    let query = match query_form(req) {
        Ok(q) => q,
        Err(e) => return Ok(error_page(400, "Invalid request", &e.description)),
    };
    let return_to = valid_return_to(query.get("return_to"));
    let cookie = request_cookie(req, SESSION_COOKIE);
    if let Some(signed_in) = session_of(state, cookie.as_deref(), now).await? {
        return Ok(match return_to {
            Some(_) => redirect(303, &after_signin(base, return_to)),
            None => signed_in_page(base, &signed_in),
        });
    }
    Ok(fresh_signin_form(200, base, return_to, "", None))
}

async fn signin_post(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let base = state.config.web_base_url.clone();
    let client_ip = http::source_ip(req);
    if !same_origin(req, &base) {
        tracing::warn!(audit = "signin_refused_origin", client_ip = %client_ip, "web");
        return Ok(forbidden());
    }
    let form = match page_form(req) {
        Ok(f) => f,
        Err(resp) => return Ok(*resp),
    };
    let form_token = form.get("csrf").unwrap_or_default();
    let cookie_token = request_cookie(req, SIGNIN_COOKIE).unwrap_or_default();
    if !looks_like_token(&cookie_token) || !same(form_token, &cookie_token) {
        tracing::warn!(audit = "signin_refused_csrf", client_ip = %client_ip, "web");
        return Ok(forbidden());
    }
    let return_to = valid_return_to(form.get("return_to"));
    if let Some(challenge) = form.get("challenge") {
        return signin_second_step(state, req, &form, challenge, form_token, return_to, now).await;
    }
    let email = form.get("email").unwrap_or_default().to_owned();
    let credentials = Credentials {
        email: email.clone(),
        password: form.get("password").unwrap_or_default().to_owned(),
    };
    let user = match crate::login::verify_credentials(state, &credentials, &client_ip, now).await {
        Ok(user) => user,
        Err(e) => {
            let (status, message) = match &e {
                Error::Validation(_) => (400, "Enter your email address and your password."),
                Error::InvalidCredentials => (401, "Email or password is wrong."),
                Error::EmailNotVerified => (
                    403,
                    "Confirm your email address first: open the link we mailed you.",
                ),
                _ => match refusal(&e) {
                    Some(r) => r,
                    None => return Err(e),
                },
            };
            let resp = fresh_signin_form(status, &base, return_to, &email, Some(message));
            return Ok(with_retry_after(resp, &e));
        }
    };
    if user.mfa.is_active() {
        // The password was right; the second step is the code page, bound to this form.
        let challenge = crate::mfa::challenge(state, &user, now).await?;
        tracing::info!(audit = "signin_mfa_required", user_id = %user.id, client_ip = %client_ip, "web");
        return Ok(code_page(
            200, &base, form_token, return_to, &challenge, None,
        ));
    }
    start_session(state, req, &user, false, return_to, now).await
}

/// Lockout and rate limiting, as the pages say them.
fn refusal(e: &Error) -> Option<(u16, &'static str)> {
    match e {
        Error::AccountLocked { .. } => Some((
            423,
            "This account is locked after too many failed attempts. Try again later.",
        )),
        Error::RateLimited { .. } => Some((
            429,
            "Too many sign-in attempts. Wait a few minutes and try again.",
        )),
        _ => None,
    }
}

fn with_retry_after(mut resp: Response<Body>, e: &Error) -> Response<Body> {
    if let Error::RateLimited { retry_after } | Error::AccountLocked { retry_after } = e
        && let Ok(v) = HeaderValue::from_str(&(*retry_after).max(1).to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The second step of sign-in for an account with TOTP: a code from the app, or a
/// recovery code.
fn code_page(
    status: u16,
    base: &str,
    csrf: &str,
    return_to: Option<&str>,
    challenge: &str,
    error: Option<&str>,
) -> Response<Body> {
    let alert = error
        .map(|e| format!("<p role=\"alert\" class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    html(
        status,
        "Two-step verification",
        &format!(
            "<h1>Two-step verification</h1>\
<p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>{alert}\
<form method=\"post\" action=\"{base}/auth/signin\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"return_to\" value=\"{rt}\">\
<input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
<label for=\"code\">Code</label>\
<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus>\
<button type=\"submit\">Verify</button></form>",
            base = esc(base),
            csrf = esc(csrf),
            rt = esc(return_to.unwrap_or_default()),
            challenge = esc(challenge),
        ),
    )
}

async fn signin_second_step(
    state: &AppState,
    req: &Request,
    form: &Form,
    challenge: &str,
    csrf: &str,
    return_to: Option<&str>,
    now: i64,
) -> Result<Response<Body>, Error> {
    let base = &state.config.web_base_url;
    let client_ip = http::source_ip(req);
    let code = form.get("code").unwrap_or_default().trim();
    let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        crate::mfa::Factor::Code(code.to_owned())
    } else {
        crate::mfa::Factor::Recovery(code.to_owned())
    };
    if code.is_empty() || code.len() > 64 || challenge.len() > crate::token::MAX_TOKEN_BYTES {
        return Ok(code_page(
            400,
            base,
            csrf,
            return_to,
            challenge,
            Some("Enter the code from your app."),
        ));
    }
    match crate::mfa::second_factor(state, challenge, &factor, &client_ip, now).await {
        Ok((user, auth)) => start_session(state, req, &user, auth.is_mfa(), return_to, now).await,
        Err(Error::InvalidMfaCode) => Ok(code_page(
            401,
            base,
            csrf,
            return_to,
            challenge,
            Some("That code is wrong or was already used."),
        )),
        Err(Error::InvalidMfaChallenge) => Ok(fresh_signin_form(
            401,
            base,
            return_to,
            "",
            Some("Your sign-in expired. Sign in again."),
        )),
        Err(e) => match refusal(&e) {
            Some((status, message)) => Ok(with_retry_after(
                fresh_signin_form(status, base, return_to, "", Some(message)),
                &e,
            )),
            None => Err(e),
        },
    }
}

/// A signed-in browser: a new session (a new id every time; the browser's previous session
/// ends), its cookies, and on to where it was going.
async fn start_session(
    state: &AppState,
    req: &Request,
    user: &crate::store::User,
    mfa: bool,
    return_to: Option<&str>,
    now: i64,
) -> Result<Response<Body>, Error> {
    let base = &state.config.web_base_url;
    if let Some(old) = request_cookie(req, SESSION_COOKIE).filter(|v| looks_like_token(v))
        && let Err(e) = state.web.delete_session(&crate::ids::digest(&old)).await
    {
        tracing::warn!(error = %e, "previous session not deleted");
    }
    let id = random_token();
    let absolute = state.config.session_absolute;
    state
        .web
        .create_session(&WebSession {
            id_hash: crate::ids::digest(&id),
            user_id: user.id.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + absolute,
            mfa,
        })
        .await?;
    tracing::info!(audit = "signin_succeeded", user_id = %user.id, mfa, client_ip = %http::source_ip(req), "web");
    Ok(with_cookies(
        redirect(303, &after_signin(base, return_to)),
        &[
            cookie(SESSION_COOKIE, &id, true, absolute),
            cookie(CSRF_COOKIE, &csrf_token(&id), false, absolute),
            expired_cookie(SIGNIN_COOKIE, true),
        ],
    ))
}

async fn signout(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let base = state.config.web_base_url.clone();
    if !same_origin(req, &base) {
        return Ok(forbidden());
    }
    let form = match page_form(req) {
        Ok(f) => f,
        Err(resp) => return Ok(*resp),
    };
    let cookie = request_cookie(req, SESSION_COOKIE);
    if let Some(signed_in) = session_of(state, cookie.as_deref(), now).await? {
        if !same(
            form.get("csrf").unwrap_or_default(),
            &csrf_token(&signed_in.id),
        ) {
            return Ok(forbidden());
        }
        state.web.delete_session(&signed_in.session.id_hash).await?;
        tracing::info!(audit = "signout", user_id = %signed_in.session.user_id, "web");
    }
    Ok(with_cookies(
        html(
            200,
            "Signed out",
            &format!(
                "<h1>You are signed out</h1><p>Your session has ended on this device.</p>\
<p><a href=\"{}/auth/signin\">Sign in again</a></p>",
                esc(&base)
            ),
        ),
        &[
            expired_cookie(SESSION_COOKIE, true),
            expired_cookie(CSRF_COOKIE, false),
        ],
    ))
}

// ---------------------------------------------------------------------------------------
// Authorization endpoint

/// A checked authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Debug, Clone)]
struct AuthorizeRequest {
    client: ClientRecord,
    redirect_uri: String,
    state: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: String,
    prompt_none: bool,
}

/// Why an authorization request is refused: shown on a page (the client or its redirect URI
/// is not trustworthy) or sent back to the verified redirect URI.
enum AuthorizeError {
    Page(Response<Body>),
    Redirect(Response<Body>),
    Store(Error),
}

impl From<Error> for AuthorizeError {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

/// `redirect_uri` + the response parameters, with `iss` (RFC 9207: mix-up defence).
fn response_location(redirect_uri: &str, params: &[(&str, &str)], issuer: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    query.append_pair("iss", issuer);
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", query.finish())
}

fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
    issuer: &str,
) -> AuthorizeError {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    AuthorizeError::Redirect(redirect(
        302,
        &response_location(redirect_uri, &params, issuer),
    ))
}

fn valid_challenge(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Check an authorization request: client and redirect URI first (errors shown on a page),
/// then everything else (errors sent to the redirect URI). Reads the client (one GetItem).
async fn check_authorize(
    state: &AppState,
    params: &Form,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let issuer = &state.config.jwt_issuer;
    let client_id = params.get("client_id").unwrap_or_default();
    if !looks_like_client_id(client_id) {
        return Err(AuthorizeError::Page(error_page(
            400,
            "Unknown application",
            "The application that sent you here is not registered (client_id missing or unknown).",
        )));
    }
    let client = match state.clients.get(client_id).await.map_err(Error::from)? {
        Some(c) if !c.disabled => c,
        _ => {
            return Err(AuthorizeError::Page(error_page(
                400,
                "Unknown application",
                "The application that sent you here is not registered (client_id missing or unknown).",
            )));
        }
    };
    let redirect_uri = params.get("redirect_uri").unwrap_or_default();
    if !client.has_redirect_uri(redirect_uri) {
        tracing::warn!(audit = "authorize_refused_redirect_uri", client_id = %client.id, "web");
        return Err(AuthorizeError::Page(error_page(
            400,
            "Invalid redirect",
            "The application asked to send you back to an address it has not registered.",
        )));
    }
    let redirect_uri = redirect_uri.to_owned();
    let st = params.get("state");
    let fail = |error: &str, description: &str| {
        error_redirect(&redirect_uri, st, error, description, issuer)
    };
    let Some(st) = st.filter(|s| s.len() <= 512) else {
        return Err(fail(
            "invalid_request",
            "state is required (at most 512 characters)",
        ));
    };
    if params.get("response_type") != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(fail(
            "unauthorized_client",
            "the client may not use the authorization code grant",
        ));
    }
    if params.get("code_challenge_method") != Some("S256") {
        return Err(fail(
            "invalid_request",
            "PKCE is required: code_challenge_method must be S256",
        ));
    }
    let Some(challenge) = params.get("code_challenge").filter(|c| valid_challenge(c)) else {
        return Err(fail(
            "invalid_request",
            "PKCE is required: code_challenge must be 43 to 128 unreserved characters",
        ));
    };
    let nonce = params.get("nonce");
    if nonce.is_some_and(|n| n.len() > 512) {
        return Err(fail("invalid_request", "nonce is too long"));
    }
    let scope = match granted_scope(&client, params.get("scope")) {
        Ok(scope) => scope,
        Err(e) => return Err(fail(e.error, &e.description)),
    };
    let prompt = params.get("prompt").unwrap_or_default();
    if prompt
        .split(' ')
        .any(|p| !matches!(p, "" | "none" | "consent" | "login"))
    {
        return Err(fail("invalid_request", "unsupported prompt value"));
    }
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(fail(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    Ok(AuthorizeRequest {
        redirect_uri: redirect_uri.clone(),
        state: st.to_owned(),
        scope,
        nonce: nonce.map(str::to_owned),
        code_challenge: challenge.to_owned(),
        prompt_none: prompt.split(' ').any(|p| p == "none"),
        client,
    })
}

/// Issue a code for `request` to `signed_in` (one PutItem) and send the browser back.
async fn issue_code(
    state: &AppState,
    request: &AuthorizeRequest,
    signed_in: &SignedIn,
    now: i64,
) -> Result<Response<Body>, Error> {
    let code = random_token();
    state
        .web
        .put_code(&AuthCode {
            code_hash: crate::ids::digest(&code),
            client_id: request.client.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            user_id: signed_in.session.user_id.clone(),
            email: signed_in.session.email.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            auth_time: signed_in.session.created_at,
            expires_at: now + CODE_TTL,
            used_at: None,
            family_id: None,
            access_jti: None,
            access_exp: None,
        })
        .await?;
    tracing::info!(audit = "authorization_code_issued", client_id = %request.client.id, user_id = %signed_in.session.user_id, "web");
    Ok(redirect(
        302,
        &response_location(
            &request.redirect_uri,
            &[("code", &code), ("state", &request.state)],
            &state.config.jwt_issuer,
        ),
    ))
}

fn scope_list(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a scope lets the application do, in words (unknown scopes show their name only).
fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "Confirm who you are",
        "email" => "See your email address",
        "profile" => "See your basic profile",
        "offline_access" => "Stay connected when you are not using it",
        _ => "Use the permission",
    }
}

fn consent_page(base: &str, request: &AuthorizeRequest, signed_in: &SignedIn) -> Response<Body> {
    let scopes = scope_list(&request.scope);
    let items = if scopes.is_empty() {
        "<li>Know that you use it (no other access)</li>".to_owned()
    } else {
        scopes
            .iter()
            .map(|s| format!("<li>{} <code>{}</code></li>", describe_scope(s), esc(s)))
            .collect::<String>()
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(name),
            esc(value)
        )
    };
    let mut fields = String::new();
    for (name, value) in [
        ("csrf", csrf_token(&signed_in.id).as_str()),
        ("response_type", "code"),
        ("client_id", request.client.id.as_str()),
        ("redirect_uri", request.redirect_uri.as_str()),
        ("state", request.state.as_str()),
        ("scope", request.scope.as_str()),
        ("code_challenge", request.code_challenge.as_str()),
        ("code_challenge_method", "S256"),
    ] {
        fields.push_str(&hidden(name, value));
    }
    if let Some(nonce) = &request.nonce {
        fields.push_str(&hidden("nonce", nonce));
    }
    let host = origin_of(&request.redirect_uri);
    html(
        200,
        "Authorize",
        &format!(
            "<h1>{name} wants to access your account</h1>\
<p>If you allow it, <strong>{name}</strong> will be able to:</p>\
<ul class=\"scopes\">{items}</ul>\
<form method=\"post\" action=\"{base}/oauth/consent\">{fields}\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>\
<p class=\"who\">Signed in as {email}. You will be sent back to {host}.</p>",
            name = esc(&request.client.name),
            base = esc(base),
            email = esc(&signed_in.session.email),
            host = esc(host),
        ),
    )
}

/// `GET /oauth/authorize`.
async fn authorize(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let base = &state.config.web_base_url;
    let params = match query_form(req) {
        Ok(p) => p,
        Err(e) => return Ok(error_page(400, "Invalid request", &e.description)),
    };
    let cookie = request_cookie(req, SESSION_COOKIE);
    // The client and the session are independent reads: one round trip.
    let (checked, session) = tokio::join!(
        check_authorize(state, &params),
        session_of(state, cookie.as_deref(), now)
    );
    let request = match checked {
        Ok(r) => r,
        Err(AuthorizeError::Page(resp) | AuthorizeError::Redirect(resp)) => return Ok(resp),
        Err(AuthorizeError::Store(e)) => return Err(e),
    };
    let issuer = &state.config.jwt_issuer;
    let wants_login = params
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|x| x == "login"));
    let signed_in = match session? {
        Some(s) if !wants_login => s,
        _ if request.prompt_none => {
            return Ok(
                match error_redirect(
                    &request.redirect_uri,
                    Some(&request.state),
                    "login_required",
                    "the user is not signed in",
                    issuer,
                ) {
                    AuthorizeError::Redirect(r) | AuthorizeError::Page(r) => r,
                    AuthorizeError::Store(e) => return Err(e),
                },
            );
        }
        _ => {
            let query = req.uri().query().unwrap_or_default();
            // prompt=login: sign in again; the request comes back without it.
            let return_to = if wants_login {
                let mut q = form_urlencoded::Serializer::new(String::new());
                for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                    if k != "prompt" {
                        q.append_pair(&k, &v);
                    }
                }
                q.finish()
            } else {
                query.to_owned()
            };
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("return_to", &return_to);
            return Ok(redirect(303, &format!("{base}/auth/signin?{}", q.finish())));
        }
    };
    let forced = params
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|x| x == "consent"));
    let consented = state
        .web
        .consent(&signed_in.session.user_id, &request.client.id)
        .await?;
    // A remembered consent (a record exists; it may name no scope) covering every scope asked.
    let covered = !consented.is_empty()
        && scope_list(&request.scope)
            .iter()
            .all(|s| consented.contains(s));
    if covered && !forced {
        return issue_code(state, &request, &signed_in, now).await;
    }
    if request.prompt_none {
        return Ok(
            match error_redirect(
                &request.redirect_uri,
                Some(&request.state),
                "consent_required",
                "the user has not consented to this client",
                issuer,
            ) {
                AuthorizeError::Redirect(r) | AuthorizeError::Page(r) => r,
                AuthorizeError::Store(e) => return Err(e),
            },
        );
    }
    Ok(consent_page(base, &request, &signed_in))
}

/// `POST /oauth/consent`: the consent page's answer.
async fn consent(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    if !same_origin(req, &state.config.web_base_url) {
        return Ok(forbidden());
    }
    let form = match page_form(req) {
        Ok(f) => f,
        Err(resp) => return Ok(*resp),
    };
    let cookie = request_cookie(req, SESSION_COOKIE);
    // The session and the client are independent reads: one round trip, as in authorize.
    let (session, checked) = tokio::join!(
        session_of(state, cookie.as_deref(), now),
        check_authorize(state, &form)
    );
    let Some(signed_in) = session? else {
        return Ok(error_page(
            401,
            "Session ended",
            "Your session ended before you answered. Go back to the application and start again.",
        ));
    };
    if !same(
        form.get("csrf").unwrap_or_default(),
        &csrf_token(&signed_in.id),
    ) {
        tracing::warn!(audit = "consent_refused_csrf", user_id = %signed_in.session.user_id, "web");
        return Ok(forbidden());
    }
    let request = match checked {
        Ok(r) => r,
        Err(AuthorizeError::Page(resp) | AuthorizeError::Redirect(resp)) => return Ok(resp),
        Err(AuthorizeError::Store(e)) => return Err(e),
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            tracing::info!(audit = "consent_denied", client_id = %request.client.id, user_id = %signed_in.session.user_id, "web");
            return Ok(
                match error_redirect(
                    &request.redirect_uri,
                    Some(&request.state),
                    "access_denied",
                    "the user denied the request",
                    &state.config.jwt_issuer,
                ) {
                    AuthorizeError::Redirect(r) | AuthorizeError::Page(r) => r,
                    AuthorizeError::Store(e) => return Err(e),
                },
            );
        }
        _ => return Ok(error_page(400, "Invalid request", "Choose Allow or Deny.")),
    }
    let mut scopes = state
        .web
        .consent(&signed_in.session.user_id, &request.client.id)
        .await?;
    for s in scope_list(&request.scope) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    if scopes.is_empty() {
        // Consent to no scope at all is still remembered.
        scopes.push(String::new());
    }
    state
        .web
        .put_consent(&signed_in.session.user_id, &request.client.id, &scopes, now)
        .await?;
    tracing::info!(audit = "consent_granted", client_id = %request.client.id, user_id = %signed_in.session.user_id, scope = %request.scope, "web");
    issue_code(state, &request, &signed_in, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn origins_and_escaping() {
        assert_eq!(
            origin_of("https://a.example:8443/x/y"),
            "https://a.example:8443"
        );
        assert_eq!(origin_of("https://a.example"), "https://a.example");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert!(valid_challenge(&"a".repeat(43)));
        assert!(!valid_challenge(&"a".repeat(42)));
        assert!(!valid_challenge(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session_and_differ_from_the_stored_digest() {
        let id = random_token();
        assert!(looks_like_token(&id));
        assert_eq!(csrf_token(&id), csrf_token(&id));
        assert_ne!(csrf_token(&id), csrf_token(&random_token()));
        assert_ne!(csrf_token(&id), crate::ids::digest(&id));
    }

    #[test]
    fn responses_go_back_with_iss_and_keep_the_registered_query() {
        assert_eq!(
            response_location(
                "https://a.example/cb",
                &[("code", "c"), ("state", "s t")],
                "https://i"
            ),
            "https://a.example/cb?code=c&state=s+t&iss=https%3A%2F%2Fi"
        );
        assert_eq!(
            response_location("https://a.example/cb?tenant=1", &[("code", "c")], "i"),
            "https://a.example/cb?tenant=1&code=c&iss=i"
        );
    }

    fn post(headers: &[(&str, &str)]) -> Request {
        let mut b = lambda_http::http::Request::builder().method("POST");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::Empty).unwrap()
    }

    #[test]
    fn unsafe_requests_must_come_from_our_origin() {
        let base = "https://auth.example/web";
        assert!(same_origin(
            &post(&[("origin", "https://auth.example")]),
            base
        ));
        assert!(!same_origin(
            &post(&[("origin", "https://evil.example")]),
            base
        ));
        assert!(!same_origin(&post(&[("origin", "null")]), base));
        assert!(!same_origin(
            &post(&[("origin", "https://auth.example.evil.example")]),
            base
        ));
        assert!(same_origin(
            &post(&[("referer", "https://auth.example/web/auth/signin")]),
            base
        ));
        assert!(!same_origin(
            &post(&[("referer", "https://auth.example.evil/x")]),
            base
        ));
        assert!(!same_origin(&post(&[]), base));
    }

    #[test]
    fn pages_forbid_framing_and_scripts() {
        let resp = error_page(400, "x", "y");
        let h = resp.headers();
        assert_eq!(h["x-frame-options"], "DENY");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("default-src 'none'"));
        assert!(!csp.contains("script-src"));
        assert_eq!(h["cache-control"], "no-store");
    }

    #[test]
    fn session_cookies_have_the_host_prefix_attributes() {
        let c = cookie(SESSION_COOKIE, "v", true, 60);
        for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!c.contains("Domain"));
        assert!(!cookie(CSRF_COOKIE, "v", false, 60).contains("HttpOnly"));
    }
}
