//! The second factor: TOTP (RFC 6238) with recovery codes — enrolment, confirmation,
//! removal, and the second step of login (`MFA_REQUIRED` → `/auth/login/mfa`).
//!
//! The access-token path stays stateless: a token says how its user authenticated (`amr`,
//! `acr`), so the authorizer's `mfa` route rule is decided in memory.
//!
//! DynamoDB per operation: the password step of an MFA user = login's reads + one UpdateItem
//! (the challenge's `jti`); `/auth/login/mfa` = the rate-limit UpdateItem and the user GetItem
//! (concurrently), ONE conditional UpdateItem that accepts the code (a later step than any
//! accepted: no replay), consumes the challenge and clears the failure count, and the refresh
//! PutItem — 4; a wrong code adds the failure count's UpdateItem instead of the last two.
//! Enrolment = revocation + user GetItems (concurrently) + one UpdateItem; confirm and delete
//! the same. Secrets Manager: the MFA key once per container, on first use.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::error::Error;
use crate::handlers::bearer;
use crate::http::{
    self, data_response, json_object, no_content, optional_str, required_str, respond,
};
use crate::login::{LoginOutput, count_failure};
use crate::state::AppState;
use crate::store::User;
use crate::store::users::FactorProof;
use crate::token::{Auth, TokenError, TokenUse};
use crate::totp;

/// How long a login challenge lasts.
pub const CHALLENGE_TTL: i64 = 300;
/// Longest code field we look at.
const MAX_CODE_LEN: usize = 64;

/// The password step of a user with a second factor: a signed challenge whose `jti` the user
/// item records (one UpdateItem), so it works once and a newer login voids it.
pub async fn challenge(state: &AppState, user: &User, now: i64) -> Result<String, Error> {
    let issued = state
        .tokens
        .issue_mfa_challenge(&user.id, &user.email, CHALLENGE_TTL, now)?;
    state
        .users
        .set_mfa_challenge(&user.email, &issued.claims.jti)
        .await?;
    Ok(issued.token)
}

/// What the user offers as the second factor.
#[derive(Clone, PartialEq, Eq)]
pub enum Factor {
    Code(String),
    Recovery(String),
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Factor::Code(<redacted>)",
            Self::Recovery(_) => "Factor::Recovery(<redacted>)",
        })
    }
}

impl Factor {
    /// `code` or `recoveryCode` from a JSON body — exactly one.
    fn from_body(body: &serde_json::Map<String, serde_json::Value>) -> Result<Self, Error> {
        let code = optional_str(body, "code")?;
        let recovery = optional_str(body, "recoveryCode")?;
        let factor = match (code, recovery) {
            (Some(c), None) => Self::Code(c.trim().to_owned()),
            (None, Some(r)) => Self::Recovery(r.to_owned()),
            _ => {
                return Err(Error::validation(
                    "send exactly one of `code` and `recoveryCode`",
                ));
            }
        };
        match &factor {
            Self::Code(c) | Self::Recovery(c) if c.is_empty() || c.len() > MAX_CODE_LEN => Err(
                Error::validation(format!("the code must be 1 to {MAX_CODE_LEN} characters")),
            ),
            _ => Ok(factor),
        }
    }
}

/// Check `factor` against `user`'s active TOTP secret or recovery codes: the proof to write,
/// or `None` when it is wrong. Reads nothing.
fn proof_of(
    key: &totp::MfaKey,
    user: &User,
    factor: &Factor,
    now: i64,
) -> Option<(FactorProofOwned, Auth)> {
    match factor {
        Factor::Code(code) => {
            let secret = key.open(user.mfa.totp_secret.as_deref()?, &user.id).ok()?;
            let step = totp::matching_step(&secret, code, now)?;
            // A step at or before the last accepted one is a replay: refused here already,
            // and again by the write's condition (concurrent requests).
            if user.mfa.totp_last_step.is_some_and(|last| step <= last) {
                return None;
            }
            Some((FactorProofOwned::Step(step), Auth::PasswordOtp))
        }
        Factor::Recovery(code) => {
            let digest = key.recovery_digest(code);
            user.mfa
                .recovery_codes
                .iter()
                .any(|d| d == &digest)
                .then_some((FactorProofOwned::Recovery(digest), Auth::PasswordRecovery))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FactorProofOwned {
    Step(i64),
    Recovery(String),
}

impl FactorProofOwned {
    fn as_proof(&self) -> FactorProof<'_> {
        match self {
            Self::Step(s) => FactorProof::Step(*s),
            Self::Recovery(d) => FactorProof::Recovery(d),
        }
    }
}

/// The second step of login: the challenge from `MFA_REQUIRED` and a code (or a recovery
/// code). Wrong codes count toward the account's lockout; each code works once. Returns the
/// user and how they authenticated.
pub async fn second_factor(
    state: &AppState,
    challenge: &str,
    factor: &Factor,
    client_ip: &str,
    now: i64,
) -> Result<(User, Auth), Error> {
    let claims = state
        .verify_token(challenge, TokenUse::Mfa, now)
        .await
        .map_err(|_| Error::InvalidMfaChallenge)?;
    let email = claims.email.as_deref().ok_or(Error::InvalidMfaChallenge)?;
    // Its own per-IP counter at login's limit: a full MFA login takes one step of each, and
    // guessing codes is bounded per account by the lockout besides.
    let subject = format!("mfa#{client_ip}");
    let (hit, user) = tokio::join!(
        state
            .rate_limits
            .hit(&subject, state.config.login_rate_limit, now),
        state.users.get(email)
    );
    let hit = hit?;
    if !hit.allowed {
        return Err(Error::RateLimited {
            retry_after: hit.retry_after,
        });
    }
    let user = match user? {
        Some(u)
            if u.id == claims.sub
                && !u.disabled
                && u.mfa.is_active()
                && u.mfa.challenge.as_deref() == Some(claims.jti.as_str()) =>
        {
            u
        }
        _ => {
            tracing::info!(audit = "mfa_challenge_refused", user_id = %claims.sub, client_ip = %client_ip, "mfa");
            return Err(Error::InvalidMfaChallenge);
        }
    };
    if user.is_locked(now) {
        return Err(Error::AccountLocked {
            retry_after: user.locked_until.unwrap_or(now) - now,
        });
    }
    let key = state.mfa_key().await?;
    let accepted = match proof_of(&key, &user, factor, now) {
        Some((proof, auth)) => state
            .users
            .accept_factor(&user.email, proof.as_proof(), Some(&claims.jti), false)
            .await?
            .then_some(auth),
        None => None,
    };
    match accepted {
        Some(auth) => {
            tracing::info!(audit = "mfa_succeeded", user_id = %user.id, recovery = (auth == Auth::PasswordRecovery), client_ip = %client_ip, "mfa");
            Ok((user, auth))
        }
        None => {
            count_failure(state, &user, client_ip, now).await?;
            tracing::warn!(audit = "mfa_failed", user_id = %user.id, client_ip = %client_ip, "mfa");
            Err(Error::InvalidMfaCode)
        }
    }
}

/// The signed-in user of a Bearer access token: verified, not revoked, still allowed (two
/// GetItems, concurrently).
async fn bearer_user(state: &AppState, req: &Request, now: i64) -> Result<User, Error> {
    let token = bearer(req).ok_or(Error::MissingToken)?;
    let claims = state
        .verify_token(token, TokenUse::Access, now)
        .await
        .map_err(|e| match e {
            TokenError::Expired => Error::TokenExpired,
            TokenError::Invalid | TokenError::UnknownKey => Error::InvalidToken,
        })?;
    let email = claims.email.as_deref().ok_or(Error::InvalidToken)?;
    let (revoked, user) = tokio::join!(
        state.revoked.is_jti_revoked(&claims.jti, claims.exp),
        state.users.get(email)
    );
    match user? {
        Some(u) if !revoked? && u.id == claims.sub && u.session_allowed(claims.iat) => Ok(u),
        _ => Err(Error::InvalidToken),
    }
}

/// An SVG QR code of `text`, as a data URI (`qr` of the enrolment answer).
fn qr_data_uri(text: &str) -> Result<String, Error> {
    use base64::Engine as _;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| Error::internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// `POST /auth/mfa/totp`: a pending secret (sealed in the user item) and how to add it to an
/// authenticator app. Refused while TOTP is active.
async fn enrol(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let user = bearer_user(state, req, now).await?;
    if user.mfa.is_active() {
        return Err(Error::MfaConflict {
            code: "MFA_ALREADY_ENABLED",
            message: "TOTP is already enabled; remove it first",
        });
    }
    let key = state.mfa_key().await?;
    let secret = totp::new_secret();
    if !state
        .users
        .set_totp_pending(&user.email, &key.seal(&secret, &user.id))
        .await?
    {
        return Err(Error::MfaConflict {
            code: "MFA_ALREADY_ENABLED",
            message: "TOTP is already enabled; remove it first",
        });
    }
    let uri = totp::otpauth_uri(&state.config.mfa_issuer, &user.email, &secret);
    tracing::info!(audit = "mfa_enrolment_started", user_id = %user.id, "mfa");
    Ok(data_response(
        200,
        &json!({"otpauthUri": uri, "secret": totp::base32(&secret), "qr": qr_data_uri(&uri)?}),
    ))
}

/// `POST /auth/mfa/totp/confirm` `{"code"}`: the first code from the app activates the
/// pending secret; answers the recovery codes, shown this once (stored as keyed digests).
async fn confirm(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let user = bearer_user(state, req, now).await?;
    let body = json_object(req)?;
    let code = required_str(&body, "code")?.trim().to_owned();
    let Some(pending) = user
        .mfa
        .totp_pending
        .clone()
        .filter(|_| !user.mfa.is_active())
    else {
        return Err(Error::MfaConflict {
            code: "MFA_NOT_PENDING",
            message: "there is no TOTP enrolment to confirm; start one first",
        });
    };
    let key = state.mfa_key().await?;
    let secret = key
        .open(&pending, &user.id)
        .map_err(|_| Error::internal("a pending TOTP secret does not open"))?;
    let step = totp::matching_step(&secret, &code, now).ok_or(Error::InvalidMfaCode)?;
    let codes = totp::new_recovery_codes();
    let digests: Vec<String> = codes.iter().map(|c| key.recovery_digest(c)).collect();
    if !state
        .users
        .activate_totp(&user.email, &pending, step, &digests)
        .await?
    {
        return Err(Error::MfaConflict {
            code: "MFA_NOT_PENDING",
            message: "the enrolment changed meanwhile; start again",
        });
    }
    tracing::info!(audit = "mfa_enabled", user_id = %user.id, "mfa");
    Ok(data_response(200, &json!({"recoveryCodes": codes})))
}

/// `DELETE /auth/mfa/totp` `{"code"}` or `{"recoveryCode"}`: remove the second factor,
/// proven by a current code (accepted once) or an unused recovery code.
async fn remove(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let user = bearer_user(state, req, now).await?;
    let factor = Factor::from_body(&json_object(req)?)?;
    if !user.mfa.is_active() {
        return Err(Error::MfaConflict {
            code: "MFA_NOT_ENABLED",
            message: "TOTP is not enabled",
        });
    }
    let key = state.mfa_key().await?;
    let removed = match proof_of(&key, &user, &factor, now) {
        Some((proof, _)) => {
            state
                .users
                .accept_factor(&user.email, proof.as_proof(), None, true)
                .await?
        }
        None => false,
    };
    if !removed {
        tracing::warn!(audit = "mfa_remove_refused", user_id = %user.id, "mfa");
        return Err(Error::InvalidMfaCode);
    }
    tracing::info!(audit = "mfa_disabled", user_id = %user.id, "mfa");
    Ok(no_content())
}

/// `POST /auth/login/mfa` `{"challenge", "code"}` or `{"challenge", "recoveryCode"}`:
/// answers like login.
async fn login_mfa(
    state: &AppState,
    req: &Request,
    now: i64,
) -> Result<(LoginOutput, Response<Body>), Error> {
    let body = json_object(req)?;
    let challenge = required_str(&body, "challenge")?;
    if challenge.len() > crate::token::MAX_TOKEN_BYTES {
        return Err(Error::InvalidMfaChallenge);
    }
    let factor = Factor::from_body(&body)?;
    let client_ip = http::source_ip(req);
    let (user, auth) = second_factor(state, challenge, &factor, &client_ip, now).await?;
    let out = crate::login::finish_login(state, user, auth, &client_ip, now).await?;
    let resp = data_response(200, &out);
    Ok((out, resp))
}

/// The `mfa` function: one handler for its routes, chosen by the path's ending and method.
pub async fn handle(state: &AppState, req: Request, now: i64) -> Response<Body> {
    let path = crate::http::route_path(&req);
    let method = req.method().clone();
    let result = if path.ends_with("/auth/login/mfa") {
        match method {
            Method::POST => login_mfa(state, &req, now).await.map(|(out, resp)| {
                crate::handlers::with_session_cookies(state, resp, &out.tokens.refresh_token)
            }),
            _ => Err(Error::MethodNotAllowed { allow: "POST" }),
        }
    } else if path.ends_with("/auth/mfa/totp/confirm") {
        match method {
            Method::POST => confirm(state, &req, now).await,
            _ => Err(Error::MethodNotAllowed { allow: "POST" }),
        }
    } else if path.ends_with("/auth/mfa/totp") {
        match method {
            Method::POST => enrol(state, &req, now).await,
            Method::DELETE => remove(state, &req, now).await,
            _ => Err(Error::MethodNotAllowed {
                allow: "POST, DELETE",
            }),
        }
    } else {
        Err(Error::NotFound)
    };
    respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_come_from_exactly_one_field_and_never_show_in_debug() {
        let body = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            Factor::from_body(&body(json!({"code": " 123456 "}))).unwrap(),
            Factor::Code("123456".into())
        );
        assert_eq!(
            Factor::from_body(&body(json!({"recoveryCode": "abcde-fghij"}))).unwrap(),
            Factor::Recovery("abcde-fghij".into())
        );
        for bad in [
            json!({}),
            json!({"code": "1", "recoveryCode": "2"}),
            json!({"code": 123456}),
            json!({"code": ""}),
            json!({"code": "1".repeat(65)}),
        ] {
            assert_eq!(
                Factor::from_body(&body(bad.clone())).unwrap_err().code(),
                "VALIDATION_ERROR",
                "{bad}"
            );
        }
        assert!(!format!("{:?}", Factor::Code("123456".into())).contains("123456"));
    }

    #[test]
    fn qr_codes_are_svg_data_uris() {
        let uri = qr_data_uri("otpauth://totp/P:a?secret=ABC").unwrap();
        assert!(uri.starts_with("data:image/svg+xml;base64,"));
    }
}
