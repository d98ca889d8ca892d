//! The account lifecycle (the `account` function): self-service sign-up with email
//! verification, password change, and password reset by mail — after Cognito's sign-up /
//! confirm / forgot-password, Auth0's reset tickets and OWASP's Forgot Password cheat sheet.
//!
//! One-time tokens (verification, reset) read `<base64url(email)>.<256 random bits>`: the
//! first part only says whose item to read (the recipient's own address, which the mail
//! already shows); the whole token is stored ONLY as its SHA-256 on the user item, compared
//! in constant time, checked for expiry in code, and consumed by a conditional write. A newer
//! reset token replaces the older one's hash, so it voids it.
//!
//! Enumeration: register, resend and reset-request answer the same 202 body whether or not
//! the address has an account, do the same DynamoDB and SES work where they can, and are
//! padded to a floor (`ACCOUNT_RESPONSE_FLOOR_MS`) so what work differs cannot show in the
//! time either. A mail that cannot be sent leaves nothing behind (a new account is removed
//! again) and answers 503 on both paths alike.

use std::time::{Duration, Instant};

use base64::Engine as _;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use subtle::ConstantTimeEq as _;

use crate::error::Error;
use crate::handlers::bearer;
use crate::http::{self, data_response, json_object, required_str, respond};
use crate::login::normalise_email;
use crate::mail::{Mail, texts};
use crate::state::AppState;
use crate::store::User;
use crate::token::{TokenError, TokenUse};

/// Verification links last a day.
pub const VERIFY_TTL: i64 = 24 * 3600;
/// Reset links last 30 minutes.
pub const RESET_TTL: i64 = 30 * 60;

/// The one answer of register, resend and reset-request.
fn accepted() -> Response<Body> {
    data_response(
        202,
        &json!({"status": "accepted", "message": "If the address can receive this, a mail is on its way."}),
    )
}

/// A new one-time token for `email`.
pub fn new_token(email: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", b64.encode(email.as_bytes()), b64.encode(bytes))
}

/// The email a token names (not yet checked against anything).
fn token_email(token: &str) -> Option<String> {
    if token.len() > 512 {
        return None;
    }
    let (head, tail) = token.split_once('.')?;
    if tail.len() != 43 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()?;
    normalise_email(&String::from_utf8(bytes).ok()?).ok()
}

/// Whether `token` is the one whose hash is stored, unexpired at `now`.
fn token_matches(token: &str, stored: Option<&str>, expires_at: Option<i64>, now: i64) -> bool {
    let (Some(stored), Some(until)) = (stored, expires_at) else {
        return false;
    };
    let digest = crate::ids::digest(token);
    bool::from(digest.as_bytes().ct_eq(stored.as_bytes())) && now < until
}

fn link(template: &str, token: &str) -> String {
    template.replace("{token}", token)
}

/// Pad a response to the floor (enumeration: same time for every address).
async fn pad(started: Instant, floor_ms: u64) {
    let floor = Duration::from_millis(floor_ms);
    if let Some(rest) = floor.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

/// Send `mail`; on failure the caller has already undone what it did (or did nothing).
async fn send(state: &AppState, mail: &Mail) -> Result<(), Error> {
    let result = state.mailer().await?.send(mail).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "mail not sent");
    }
    result
}

/// Count one request against the per-IP and per-email limits of an account operation, in one
/// write. `Err(RateLimited)` when either is over.
async fn limit(
    state: &AppState,
    op: &str,
    client_ip: &str,
    email: &str,
    now: i64,
) -> Result<(), Error> {
    let ip_key = format!("{op}#ip#{client_ip}");
    let email_key = format!("{op}#email#{email}");
    let limits = [
        (ip_key.as_str(), state.config.account_ip_rate_limit),
        (email_key.as_str(), state.config.account_email_rate_limit),
    ];
    match state.rate_limits.hit_all(&limits, now).await? {
        Some(retry_after) => Err(Error::RateLimited { retry_after }),
        None => Ok(()),
    }
}

/// `POST /auth/register` `{"email", "password"}` (with `SELF_SIGNUP=on`).
async fn register(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let started = Instant::now();
    if !state.config.self_signup {
        return Err(Error::NotFound);
    }
    let body = json_object(req)?;
    let email = normalise_email(required_str(&body, "email")?)?;
    let password = required_str(&body, "password")?;
    state
        .config
        .password_rules
        .check_new(password)
        .map_err(Error::WeakPassword)?;
    let client_ip = http::source_ip(req);
    limit(state, "register", &client_ip, &email, now).await?;
    // The hash is made on both paths: the same work whether or not the address is taken.
    let hash = state
        .hashing
        .hash(password)
        .map_err(|e| Error::internal(e.to_string()))?;
    let token = new_token(&email);
    let mut user = crate::admin::new_user(&email, "user", hash, now);
    user.email_verified = false;
    user.verify_token_hash = Some(crate::ids::digest(&token));
    user.verify_expires_at = Some(now + VERIFY_TTL);
    let product = &state.config.mail_product_name;
    let result = if state.users.create(&user).await? {
        let mail = texts::verify(
            product,
            &email,
            &link(&state.config.verify_email_url, &token),
            VERIFY_TTL / 3600,
        );
        match send(state, &mail).await {
            Ok(()) => {
                tracing::info!(audit = "registered", user_id = %user.id, client_ip = %client_ip, "account");
                Ok(())
            }
            Err(e) => {
                // Nothing half-done: the account that could not be told about goes again.
                state.users.delete_unverified(&email, &user.id).await?;
                Err(e)
            }
        }
    } else {
        let hint = link(&state.config.password_reset_url, "").replace("#token=", "");
        let mail = texts::already_registered(product, &email, &hint);
        tracing::info!(audit = "register_existing_address", client_ip = %client_ip, "account");
        send(state, &mail).await
    };
    pad(started, state.config.account_response_floor_ms).await;
    result.map(|()| accepted())
}

/// `POST /auth/verify-email` `{"token"}`.
async fn verify_email(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let body = json_object(req)?;
    let token = required_str(&body, "token")?;
    let invalid = || Error::InvalidLink;
    let email = token_email(token).ok_or_else(invalid)?;
    let user = state.users.get(&email).await?.ok_or_else(invalid)?;
    if !token_matches(
        token,
        user.verify_token_hash.as_deref(),
        user.verify_expires_at,
        now,
    ) || !state
        .users
        .mark_verified(&email, &crate::ids::digest(token))
        .await?
    {
        return Err(invalid());
    }
    tracing::info!(audit = "email_verified", user_id = %user.id, "account");
    Ok(data_response(200, &json!({"verified": true})))
}

/// `POST /auth/verify-email/resend` `{"email"}`: a new link for an unverified account.
async fn resend(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let started = Instant::now();
    let body = json_object(req)?;
    let email = normalise_email(required_str(&body, "email")?)?;
    let client_ip = http::source_ip(req);
    limit(state, "verify-resend", &client_ip, &email, now).await?;
    let user = state.users.get(&email).await?;
    let result = match user {
        Some(user) if !user.email_verified && !user.disabled => {
            let token = new_token(&email);
            state
                .users
                .set_verify_token(&email, &crate::ids::digest(&token), now + VERIFY_TTL)
                .await?;
            let mail = texts::verify(
                &state.config.mail_product_name,
                &email,
                &link(&state.config.verify_email_url, &token),
                VERIFY_TTL / 3600,
            );
            send(state, &mail).await
        }
        _ => Ok(()),
    };
    pad(started, state.config.account_response_floor_ms).await;
    result.map(|()| accepted())
}

/// End everything a password protected: refresh families, access tokens (through the
/// revocation list), browser sessions. `sessions_not_before` (set with the new hash) voids
/// refresh tokens issued before `now` even if one slipped past the index.
async fn end_everything(state: &AppState, user: &User, now: i64) -> Result<(), Error> {
    state.refresh_tokens.revoke_user(&user.id, now).await?;
    state
        .revoked
        .revoke_user(
            &user.id,
            now,
            state.config.access_token_ttl + state.config.jwt_leeway,
        )
        .await?;
    state.web.end_user_sessions(&user.id).await?;
    Ok(())
}

/// `POST /auth/password` (Bearer) `{"currentPassword", "newPassword"}`: the current password
/// (wrong ones count toward the lockout), a new hash, every session ended — and this caller
/// handed a fresh token pair, so its own session goes on.
async fn change_password(
    state: &AppState,
    req: &Request,
    now: i64,
) -> Result<Response<Body>, Error> {
    let token = bearer(req).ok_or(Error::MissingToken)?;
    let claims = state
        .verify_token(token, TokenUse::Access, now)
        .await
        .map_err(|e| match e {
            TokenError::Expired => Error::TokenExpired,
            TokenError::Invalid | TokenError::UnknownKey => Error::InvalidToken,
        })?;
    let body = json_object(req)?;
    let current = required_str(&body, "currentPassword")?;
    let new = required_str(&body, "newPassword")?;
    let email = claims.email.as_deref().ok_or(Error::InvalidToken)?;
    let (revoked, user) = tokio::join!(
        state.revoked.is_jti_revoked(&claims.jti, claims.exp),
        state.users.get(email)
    );
    let user = match user? {
        Some(u) if !revoked? && u.id == claims.sub && u.session_allowed(claims.iat) => u,
        _ => return Err(Error::InvalidToken),
    };
    let client_ip = http::source_ip(req);
    if user.is_locked(now) {
        return Err(Error::AccountLocked {
            retry_after: user.locked_until.unwrap_or(now) - now,
        });
    }
    if !state.hashing.verify(current, &user.password_hash) {
        crate::login::count_failure(state, &user, &client_ip, now).await?;
        tracing::warn!(audit = "password_change_wrong_password", user_id = %user.id, client_ip = %client_ip, "account");
        return Err(Error::InvalidCredentials);
    }
    state
        .config
        .password_rules
        .check_new(new)
        .map_err(Error::WeakPassword)?;
    let hash = state
        .hashing
        .hash(new)
        .map_err(|e| Error::internal(e.to_string()))?;
    if !state.users.set_password(email, &hash, now, None).await? {
        return Err(Error::InvalidToken);
    }
    end_everything(state, &user, now).await?;
    // This caller's session goes on, in a new family (everything before `now` is void).
    let auth = crate::token::Auth::from_amr(claims.amr.as_deref());
    let family = crate::ids::new_id("fam");
    let (tokens, _) = crate::login::issue_pair_as(state, &user, &family, auth, now).await?;
    tracing::info!(audit = "password_changed", user_id = %user.id, client_ip = %client_ip, "account");
    let notice = texts::password_changed(&state.config.mail_product_name, email, "changed");
    if let Err(e) = send(state, &notice).await {
        // The change is done; the notice is a courtesy.
        tracing::warn!(error = %e, user_id = %user.id, "password-change notice not sent");
    }
    Ok(crate::handlers::with_session_cookies(
        state,
        data_response(200, &json!({"tokens": tokens})),
        &tokens.refresh_token,
    ))
}

/// `POST /auth/password-reset` `{"email"}`: a reset link for a known, enabled account; the
/// same answer in the same time for any address.
async fn reset_request(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let started = Instant::now();
    let body = json_object(req)?;
    let email = normalise_email(required_str(&body, "email")?)?;
    let client_ip = http::source_ip(req);
    limit(state, "reset", &client_ip, &email, now).await?;
    let result = match state.users.get(&email).await? {
        Some(user) if !user.disabled => {
            let token = new_token(&email);
            state
                .users
                .set_reset_token(&email, &crate::ids::digest(&token), now + RESET_TTL)
                .await?;
            let mail = texts::reset(
                &state.config.mail_product_name,
                &email,
                &link(&state.config.password_reset_url, &token),
                RESET_TTL / 60,
            );
            tracing::info!(audit = "password_reset_requested", user_id = %user.id, client_ip = %client_ip, "account");
            match send(state, &mail).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    // A link nobody received must not stay valid.
                    state.users.clear_reset_token(&email).await?;
                    Err(e)
                }
            }
        }
        _ => {
            tracing::info!(audit = "password_reset_unknown_address", client_ip = %client_ip, "account");
            Ok(())
        }
    };
    pad(started, state.config.account_response_floor_ms).await;
    result.map(|()| accepted())
}

/// `POST /auth/password-reset/confirm` `{"token", "password"}`: the new password, the lockout
/// cleared, every session and family ended, the address proven, and a notice mailed.
async fn reset_confirm(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    let body = json_object(req)?;
    let token = required_str(&body, "token")?;
    let password = required_str(&body, "password")?;
    let invalid = || Error::InvalidLink;
    let email = token_email(token).ok_or_else(invalid)?;
    state
        .config
        .password_rules
        .check_new(password)
        .map_err(Error::WeakPassword)?;
    let user = state.users.get(&email).await?.ok_or_else(invalid)?;
    if user.disabled
        || !token_matches(
            token,
            user.reset_token_hash.as_deref(),
            user.reset_expires_at,
            now,
        )
    {
        return Err(invalid());
    }
    let hash = state
        .hashing
        .hash(password)
        .map_err(|e| Error::internal(e.to_string()))?;
    if !state
        .users
        .set_password(&email, &hash, now, Some(&crate::ids::digest(token)))
        .await?
    {
        // Used meanwhile (or replaced by a newer link): single use holds.
        return Err(invalid());
    }
    end_everything(state, &user, now).await?;
    tracing::info!(audit = "password_reset", user_id = %user.id, client_ip = %http::source_ip(req), "account");
    let notice = texts::password_changed(&state.config.mail_product_name, &email, "reset");
    if let Err(e) = send(state, &notice).await {
        tracing::warn!(error = %e, user_id = %user.id, "password-reset notice not sent");
    }
    Ok(data_response(200, &json!({"reset": true})))
}

/// The `account` function: one handler for its routes, chosen by the path's ending.
pub async fn handle(state: &AppState, req: Request, now: i64) -> Response<Body> {
    let path = crate::http::route_path(&req);
    if req.method() != Method::POST {
        return respond(Err(Error::MethodNotAllowed { allow: "POST" }));
    }
    let result = if path.ends_with("/auth/register") {
        register(state, &req, now).await
    } else if path.ends_with("/auth/verify-email/resend") {
        resend(state, &req, now).await
    } else if path.ends_with("/auth/verify-email") {
        verify_email(state, &req, now).await
    } else if path.ends_with("/auth/password-reset/confirm") {
        reset_confirm(state, &req, now).await
    } else if path.ends_with("/auth/password-reset") {
        reset_request(state, &req, now).await
    } else if path.ends_with("/auth/password") {
        change_password(state, &req, now).await
    } else {
        Err(Error::NotFound)
    };
    respond(result)
}

/// A one-time reset link for an operator to hand over (`portcullis user reset-password`): the
/// same token a mail would carry, stored the same way. `None` when there is no such user.
pub async fn operator_reset_link(
    users: &crate::store::UserStore,
    reset_url: &str,
    email: &str,
    now: i64,
) -> Result<Option<String>, Error> {
    let email = normalise_email(email)?;
    let token = new_token(&email);
    if !users
        .set_reset_token(&email, &crate::ids::digest(&token), now + RESET_TTL)
        .await?
    {
        return Ok(None);
    }
    Ok(Some(link(reset_url, &token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_address_and_nothing_else_passes() {
        let t = new_token("a@example.com");
        assert_eq!(token_email(&t).as_deref(), Some("a@example.com"));
        assert_ne!(t, new_token("a@example.com"));
        for bad in [
            "",
            "x",
            "YUBleGFtcGxlLmNvbQ.short",
            "!!.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(token_email(bad), None, "{bad}");
        }
        let stored = crate::ids::digest(&t);
        assert!(token_matches(&t, Some(&stored), Some(100), 99));
        assert!(!token_matches(&t, Some(&stored), Some(100), 100), "expired");
        assert!(!token_matches(&t, None, Some(100), 1));
        assert!(!token_matches(
            &new_token("a@example.com"),
            Some(&stored),
            Some(100),
            1
        ));
    }

    #[test]
    fn links_fill_the_token_in() {
        assert_eq!(
            link("https://app.example/reset#token={token}", "abc"),
            "https://app.example/reset#token=abc"
        );
    }
}
