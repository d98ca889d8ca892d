//! The login use case: rate limit, lockout, argon2id verification, token issue.
//!
//! DynamoDB requests: success = 3 (rate-limit UpdateItem and user GetItem, concurrently; then the
//! refresh PutItem)
//! plus one UpdateItem only when a failure count, an expired lock or a weak hash needs
//! clearing; wrong password = 3 (rate limit, GetItem, failure UpdateItem); unknown email = 2.

use serde::Serialize;

use crate::error::Error;
use crate::ids;
use crate::password::MAX_PASSWORD_BYTES;
use crate::state::AppState;
use crate::store::{RefreshRecord, RefreshStatus, User};
use crate::token::{Auth, Issued};

/// Longest email we accept (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Trim and lower-case an email, and check it looks like one. Returns the normalised form.
pub fn normalise_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let bad = || Error::validation("email must be a valid email address");
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let domain_ok = !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    let local_ok = !local.is_empty() && local.len() <= 64 && !local.contains('@');
    let chars_ok = !email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';'));
    if domain_ok && local_ok && chars_ok {
        Ok(email)
    } else {
        Err(bad())
    }
}

/// What a client sends.
#[derive(Clone)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub role: String,
}

#[derive(Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenPair(expires_in={})", self.expires_in)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginOutput {
    pub user: UserView,
    pub tokens: TokenPair,
    /// The login family (for audit logs; not part of the JSON body).
    #[serde(skip)]
    pub family_id: String,
}

/// Issue an access + refresh pair for `user` in `family` and store the refresh token's hash.
pub async fn issue_pair(
    state: &AppState,
    user: &User,
    family_id: &str,
    now: i64,
) -> Result<(TokenPair, Issued), Error> {
    issue_pair_as(state, user, family_id, Auth::Password, now).await
}

/// `issue_pair` for a user who authenticated with `auth` (the tokens carry `amr`/`acr`).
pub async fn issue_pair_as(
    state: &AppState,
    user: &User,
    family_id: &str,
    auth: Auth,
    now: i64,
) -> Result<(TokenPair, Issued), Error> {
    let access = state
        .tokens
        .issue_access_as(&user.id, &user.email, &user.role, auth, now)?;
    let refresh = state
        .tokens
        .issue_refresh_as(&user.id, &user.email, family_id, auth, now)?;
    let record = new_refresh_record(&refresh, user, family_id);
    state.refresh_tokens.put(&record).await?;
    Ok((pair(&access, &refresh), refresh))
}

pub(crate) fn new_refresh_record(refresh: &Issued, user: &User, family_id: &str) -> RefreshRecord {
    RefreshRecord {
        token_hash: ids::digest(&refresh.token),
        user_id: user.id.clone(),
        email: user.email.clone(),
        family_id: family_id.to_owned(),
        status: RefreshStatus::Active,
        created_at: refresh.claims.iat,
        expires_at: refresh.claims.exp,
        spent_at: None,
    }
}

pub(crate) fn pair(access: &Issued, refresh: &Issued) -> TokenPair {
    TokenPair {
        access_token: access.token.clone(),
        refresh_token: refresh.token.clone(),
        token_type: "Bearer",
        expires_in: access.claims.exp - access.claims.iat,
    }
}

/// Log a login outcome as a structured audit event (never a password, token or hash).
fn audit(event: &'static str, email: &str, user_id: Option<&str>, client_ip: &str) {
    tracing::info!(audit = event, email = %email, user_id = user_id.unwrap_or("-"), client_ip = %client_ip, "login");
}

/// Count one failed attempt against the account (a wrong password or second-factor code):
/// the lockout locks it at `LOCKOUT_THRESHOLD`.
pub(crate) async fn count_failure(
    state: &AppState,
    user: &User,
    client_ip: &str,
    now: i64,
) -> Result<(), Error> {
    let threshold = state.config.lockout_threshold;
    let lock_until = now + state.config.lockout_seconds;
    // When our own read says this failure reaches the threshold, lock in the same write.
    let lock_now = user.failed_attempts + 1 >= threshold;
    let count = state
        .users
        .record_failure(&user.email, lock_now.then_some(lock_until))
        .await?;
    if count >= threshold && !lock_now {
        // Concurrent failures pushed the count over the threshold: lock now.
        state.users.lock(&user.email, lock_until).await?;
    }
    if count >= threshold {
        audit("account_locked", &user.email, Some(&user.id), client_ip);
    }
    Ok(())
}

/// Check an email and password with the rate limit and lockout of login: the user when they
/// match and the account may sign in. Shared by login and the browser sign-in page.
pub async fn verify_credentials(
    state: &AppState,
    credentials: &Credentials,
    client_ip: &str,
    now: i64,
) -> Result<User, Error> {
    let email = normalise_email(&credentials.email)?;
    if credentials.password.is_empty() {
        return Err(Error::validation("password must not be empty"));
    }
    if credentials.password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::validation(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }

    // The rate-limit count and the user read are independent: one round trip instead of two.
    // The count is still taken for every attempt and checked before anything else is used.
    let subject = format!("login#{client_ip}");
    let (hit, user) = tokio::join!(
        state
            .rate_limits
            .hit(&subject, state.config.login_rate_limit, now),
        state.users.get(&email)
    );
    let hit = hit?;
    if !hit.allowed {
        audit("login_rate_limited", &email, None, client_ip);
        return Err(Error::RateLimited {
            retry_after: hit.retry_after,
        });
    }

    let Some(user) = user? else {
        // Same work, same answer as a wrong password: no account enumeration by timing.
        state.hashing.verify_dummy(&credentials.password);
        audit("login_failed_unknown_email", &email, None, client_ip);
        return Err(Error::InvalidCredentials);
    };

    if user.is_locked(now) {
        audit("login_refused_locked", &email, Some(&user.id), client_ip);
        return Err(Error::AccountLocked {
            retry_after: user.locked_until.unwrap_or(now) - now,
        });
    }

    if !state
        .hashing
        .verify(&credentials.password, &user.password_hash)
    {
        count_failure(state, &user, client_ip, now).await?;
        audit(
            "login_failed_wrong_password",
            &email,
            Some(&user.id),
            client_ip,
        );
        return Err(Error::InvalidCredentials);
    }

    if user.disabled {
        audit("login_refused_disabled", &email, Some(&user.id), client_ip);
        return Err(Error::InvalidCredentials);
    }
    if !user.email_verified && state.config.require_verified_email {
        // Only after the right password: this says nothing to someone who lacks it.
        audit(
            "login_refused_unverified",
            &email,
            Some(&user.id),
            client_ip,
        );
        return Err(Error::EmailNotVerified);
    }

    let upgraded = if state.hashing.needs_rehash(&user.password_hash) {
        match state.hashing.hash(&credentials.password) {
            Ok(hash) => Some(hash),
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, "password re-hash failed; keeping the old hash");
                None
            }
        }
    } else {
        None
    };
    if user.failed_attempts > 0 || user.locked_until.is_some() || upgraded.is_some() {
        state
            .users
            .record_success(&email, upgraded.as_ref())
            .await?;
    }
    Ok(user)
}

/// Log in. `client_ip` is the source IP from the request context; `now` the caller's clock.
pub async fn login(
    state: &AppState,
    credentials: &Credentials,
    client_ip: &str,
    now: i64,
) -> Result<LoginOutput, Error> {
    let user = verify_credentials(state, credentials, client_ip, now).await?;
    if user.mfa.is_active() {
        let challenge = crate::mfa::challenge(state, &user, now).await?;
        audit("login_mfa_required", &user.email, Some(&user.id), client_ip);
        return Err(Error::MfaRequired { challenge });
    }
    finish_login(state, user, Auth::Password, client_ip, now).await
}

/// The end of every successful login: a new family, the token pair, the audit event.
pub async fn finish_login(
    state: &AppState,
    user: User,
    auth: Auth,
    client_ip: &str,
    now: i64,
) -> Result<LoginOutput, Error> {
    let family_id = ids::new_id("fam");
    let (tokens, _) = issue_pair_as(state, &user, &family_id, auth, now).await?;
    tracing::info!(audit = "login_succeeded", user_id = %user.id, family_id = %family_id, client_ip = %client_ip, mfa = auth.is_mfa(), "login");
    Ok(LoginOutput {
        user: UserView {
            id: user.id,
            email: user.email,
            role: user.role,
        },
        tokens,
        family_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalise_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            normalise_email("a.b+tag@sub.example.org").unwrap(),
            "a.b+tag@sub.example.org"
        );
    }

    #[test]
    fn bad_emails_are_validation_errors() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "a@",
            "a@b",
            "a@.example.com",
            "a@example..com",
            "a b@example.com",
            "a@exa mple.com",
            "<a>@example.com",
            long.as_str(),
            "a@example.com\n",
        ] {
            let err = normalise_email(bad);
            if bad == "a@example.com\n" {
                // surrounding whitespace is trimmed, so this one is fine
                assert!(err.is_ok());
                continue;
            }
            assert_eq!(err.unwrap_err().code(), "VALIDATION_ERROR", "{bad:?}");
        }
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            email: "a@example.com".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
