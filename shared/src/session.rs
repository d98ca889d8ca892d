//! refresh and logout: single-use refresh tokens with rotation in one conditional
//! transaction, reuse detection that revokes the whole login family (RFC 9700 §4.14.2), and
//! logout that revokes refresh tokens and the presented access token at once. A revocation
//! entry lasts until the token could no longer verify anyway (its `exp` plus the leeway).
//!
//! DynamoDB requests: a successful refresh = 2 (user GetItem + one TransactWriteItems);
//! logout of one session = 2 (refresh token UpdateItem + revoked-jti PutItem).

use crate::error::Error;
use crate::ids;
use crate::login::{TokenPair, new_refresh_record, pair};
use crate::state::AppState;
use crate::store::RotateRefused;
use crate::token::{TokenError, TokenUse};

/// What a successful refresh returns.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub tokens: TokenPair,
    pub user_id: String,
    pub family_id: String,
}

/// Rotate `token`: exactly one concurrent presentation wins; a later presentation of a spent
/// token revokes its family. With `refresh_reuse_grace` > 0, a spent token presented again
/// less than that many seconds after its rotation is refused WITHOUT revoking the family
/// (two tabs of one honest client racing; the loser gets no tokens either way). The default
/// is 0: every replay is reuse, because within a grace an attacker who rotated first keeps
/// the family when the victim's client comes back.
pub async fn refresh(
    state: &AppState,
    token: &str,
    client_ip: &str,
    now: i64,
) -> Result<Refreshed, Error> {
    let claims = state
        .verify_token(token, TokenUse::Refresh, now)
        .await
        .map_err(|_| Error::InvalidRefreshToken)?;
    let (Some(family_id), Some(email)) = (claims.fam.clone(), claims.email.clone()) else {
        return Err(Error::InvalidRefreshToken);
    };
    if claims.client_id.is_some() {
        // An OAuth client's refresh token: only that client, at the token endpoint.
        return Err(Error::InvalidRefreshToken);
    }
    let user = match state.users.get(&email).await? {
        Some(user) if user.id == claims.sub && user.session_allowed(claims.iat) => user,
        _ => {
            tracing::info!(audit = "refresh_refused_user", user_id = %claims.sub, family_id = %family_id, client_ip = %client_ip, "refresh");
            return Err(Error::InvalidRefreshToken);
        }
    };
    let old_hash = ids::digest(token);
    // The family keeps how its login authenticated (`amr`, `acr`).
    let auth = crate::token::Auth::from_amr(claims.amr.as_deref());
    let access = state
        .tokens
        .issue_access_as(&user.id, &user.email, &user.role, auth, now)?;
    let next = state
        .tokens
        .issue_refresh_as(&user.id, &user.email, &family_id, auth, now)?;
    let record = new_refresh_record(&next, &user, &family_id);
    let grace = state.config.refresh_reuse_grace;
    rotate_or_revoke(state, &old_hash, &record, grace, client_ip, now).await?;
    tracing::info!(audit = "refresh_succeeded", user_id = %user.id, family_id = %family_id, client_ip = %client_ip, "refresh");
    Ok(Refreshed {
        tokens: pair(&access, &next),
        user_id: user.id,
        family_id,
    })
}

/// Spend the refresh token `old_hash` for `next` in one transaction. A spent token presented
/// again at least `grace` seconds after its rotation revokes its whole family (reuse
/// detection); every refusal is `InvalidRefreshToken`. Shared by first-party refresh (grace
/// `REFRESH_REUSE_GRACE_SECONDS`) and the OAuth refresh_token grant (no grace).
pub(crate) async fn rotate_or_revoke(
    state: &AppState,
    old_hash: &str,
    next: &crate::store::RefreshRecord,
    grace: i64,
    client_ip: &str,
    now: i64,
) -> Result<(), Error> {
    let user_id = &next.user_id;
    match state
        .refresh_tokens
        .rotate(old_hash, user_id, next, now)
        .await?
    {
        Ok(()) => Ok(()),
        Err(RotateRefused::Spent {
            spent_at,
            family_id,
        }) if now - spent_at < grace => {
            tracing::info!(audit = "refresh_race_lost", user_id = %user_id, family_id = %family_id, client_ip = %client_ip, "refresh");
            Err(Error::InvalidRefreshToken)
        }
        Err(RotateRefused::Spent { family_id, .. }) => {
            let revoked = state
                .refresh_tokens
                .revoke_family(&family_id, Some(old_hash), now)
                .await?;
            tracing::warn!(audit = "refresh_reuse_detected", user_id = %user_id, family_id = %family_id, client_ip = %client_ip, revoked, "refresh");
            Err(Error::InvalidRefreshToken)
        }
        Err(reason) => {
            tracing::info!(audit = "refresh_refused", reason = ?reason, user_id = %user_id, family_id = %next.family_id, client_ip = %client_ip, "refresh");
            Err(Error::InvalidRefreshToken)
        }
    }
}

/// What to log out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope<'a> {
    /// The session of this refresh token (it must belong to the caller).
    Session(&'a str),
    /// Every session of the caller.
    All,
}

/// Log out. `bearer` is the access token from `Authorization: Bearer`.
pub async fn logout(
    state: &AppState,
    bearer: Option<&str>,
    scope: LogoutScope<'_>,
    client_ip: &str,
    now: i64,
) -> Result<(), Error> {
    let access = state
        .verify_token(bearer.ok_or(Error::MissingToken)?, TokenUse::Access, now)
        .await
        .map_err(|e| match e {
            TokenError::Expired => Error::TokenExpired,
            TokenError::Invalid | TokenError::UnknownKey => Error::InvalidToken,
        })?;
    match scope {
        LogoutScope::Session(refresh_token) => {
            // Only a refresh token we signed for this very user is considered; anything else
            // changes nothing. An expired one has nothing left to revoke.
            let refresh_claims = match state
                .verify_token(refresh_token, TokenUse::Refresh, now)
                .await
            {
                Ok(claims) => Some(claims),
                Err(TokenError::Expired) => None,
                Err(TokenError::Invalid | TokenError::UnknownKey) => {
                    return Err(Error::InvalidRefreshToken);
                }
            };
            if let Some(claims) = refresh_claims {
                if claims.sub != access.sub {
                    tracing::warn!(audit = "logout_refused_foreign_token", user_id = %access.sub, client_ip = %client_ip, "logout");
                    return Err(Error::InvalidRefreshToken);
                }
                let hash = ids::digest(refresh_token);
                if let Some(old) = state
                    .refresh_tokens
                    .revoke_owned(&hash, &access.sub, now)
                    .await?
                {
                    if old.user_id != access.sub {
                        return Err(Error::InvalidRefreshToken);
                    }
                    if old.status == crate::store::RefreshStatus::Spent {
                        // An older token of the session: end the whole session.
                        state
                            .refresh_tokens
                            .revoke_family(&old.family_id, Some(&hash), now)
                            .await?;
                    }
                }
            }
            state
                .revoked
                .revoke_jti(&access.jti, access.exp + state.config.jwt_leeway, now)
                .await?;
            tracing::info!(audit = "logout", user_id = %access.sub, client_ip = %client_ip, "logout");
        }
        LogoutScope::All => {
            if let Some(email) = access.email.as_deref() {
                state.users.end_sessions(email, now).await?;
            }
            let revoked = state.refresh_tokens.revoke_user(&access.sub, now).await?;
            let sessions = state.web.end_user_sessions(&access.sub).await?;
            state
                .revoked
                .revoke_user(
                    &access.sub,
                    now,
                    state.config.access_token_ttl + state.config.jwt_leeway,
                )
                .await?;
            state
                .revoked
                .revoke_jti(&access.jti, access.exp + state.config.jwt_leeway, now)
                .await?;
            tracing::info!(audit = "logout_all_sessions", user_id = %access.sub, client_ip = %client_ip, revoked, sessions, "logout");
        }
    }
    Ok(())
}
