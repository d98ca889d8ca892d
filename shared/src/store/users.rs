//! Users, keyed by normalised email so that login finds one in ONE consistent read.
//! Table: hash key `email` (S); GSI `byId` on `id`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{Item, get_bool, get_n, get_opt_n, get_opt_s, get_s, n, s};
use crate::error::{StoreError, StoreErrorKind};
use crate::password::PasswordHash;
use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: String,
    pub password_hash: PasswordHash,
    pub failed_attempts: u32,
    pub locked_until: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
    /// Refresh tokens issued before this second are void ("log out everywhere").
    pub sessions_not_before: Option<i64>,
    /// The second factor, when there is one (see `Mfa`).
    pub mfa: Mfa,
    /// Whether the address is proven (absent in the item: yes — accounts made before
    /// sign-up existed, and by operators).
    pub email_verified: bool,
    /// SHA-256 of the verification token in force, and when it expires.
    pub verify_token_hash: Option<String>,
    pub verify_expires_at: Option<i64>,
    /// SHA-256 of the reset token in force (a newer one replaces it), and when it expires.
    pub reset_token_hash: Option<String>,
    pub reset_expires_at: Option<i64>,
}

/// A user's TOTP second factor as stored: secrets sealed (`totp::MfaKey`), recovery codes as
/// keyed digests, the last step a code was accepted for (replay protection), and the `jti`
/// of the login challenge in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mfa {
    /// The active secret, sealed.
    pub totp_secret: Option<String>,
    /// An enrolment waiting for its first code, sealed.
    pub totp_pending: Option<String>,
    pub totp_last_step: Option<i64>,
    pub recovery_codes: Vec<String>,
    pub challenge: Option<String>,
}

impl Mfa {
    pub fn is_active(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// What proves the second factor in a write that accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorProof<'a> {
    /// A TOTP code for this step: accepted only if no code of this or a later step was.
    Step(i64),
    /// A recovery code's digest: accepted only if still unused (and then removed).
    Recovery(&'a str),
}

impl User {
    /// Whether a refresh token issued at `iat` may still be used by this user.
    pub fn session_allowed(&self, iat: i64) -> bool {
        !self.disabled && self.sessions_not_before.is_none_or(|cutoff| iat >= cutoff)
    }

    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("email".into(), s(&self.email)),
            ("id".into(), s(&self.id)),
            ("role".into(), s(&self.role)),
            ("passwordHash".into(), s(self.password_hash.as_stored())),
            ("failedAttempts".into(), n(self.failed_attempts)),
            (
                "disabled".into(),
                aws_sdk_dynamodb::types::AttributeValue::Bool(self.disabled),
            ),
            ("createdAt".into(), n(self.created_at)),
        ]);
        if let Some(until) = self.locked_until {
            item.insert("lockedUntil".into(), n(until));
        }
        if let Some(at) = self.sessions_not_before {
            item.insert("sessionsNotBefore".into(), n(at));
        }
        if let Some(sealed) = &self.mfa.totp_secret {
            item.insert("totpSecret".into(), s(sealed));
        }
        if !self.email_verified {
            item.insert("emailVerified".into(), AttributeValue::Bool(false));
        }
        for (name, value) in [
            ("verifyTokenHash", &self.verify_token_hash),
            ("resetTokenHash", &self.reset_token_hash),
        ] {
            if let Some(v) = value {
                item.insert(name.into(), s(v));
            }
        }
        for (name, value) in [
            ("verifyExpiresAt", self.verify_expires_at),
            ("resetExpiresAt", self.reset_expires_at),
        ] {
            if let Some(v) = value {
                item.insert(name.into(), n(v));
            }
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        const OP: &str = "users.read";
        Ok(Self {
            id: get_s(item, "id", OP)?,
            email: get_s(item, "email", OP)?,
            role: get_s(item, "role", OP)?,
            password_hash: PasswordHash::from_stored(get_s(item, "passwordHash", OP)?),
            failed_attempts: get_opt_n(item, "failedAttempts")
                .unwrap_or(0)
                .clamp(0, u32::MAX as i64) as u32,
            locked_until: get_opt_n(item, "lockedUntil").filter(|v| *v > 0),
            disabled: get_bool(item, "disabled"),
            created_at: get_n(item, "createdAt", OP)?,
            sessions_not_before: get_opt_n(item, "sessionsNotBefore"),
            mfa: Mfa {
                totp_secret: get_opt_s(item, "totpSecret"),
                totp_pending: get_opt_s(item, "totpPending"),
                totp_last_step: get_opt_n(item, "totpLastStep"),
                recovery_codes: match item.get("recoveryCodes") {
                    Some(AttributeValue::Ss(set)) => set.clone(),
                    _ => Vec::new(),
                },
                challenge: get_opt_s(item, "mfaChallenge"),
            },
            email_verified: !matches!(item.get("emailVerified"), Some(AttributeValue::Bool(false))),
            verify_token_hash: get_opt_s(item, "verifyTokenHash"),
            verify_expires_at: get_opt_n(item, "verifyExpiresAt"),
            reset_token_hash: get_opt_s(item, "resetTokenHash"),
            reset_expires_at: get_opt_n(item, "resetExpiresAt"),
        })
    }
}

#[derive(Debug, Clone)]
pub struct UserStore {
    client: Client,
    table: String,
}

impl UserStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// One consistent GetItem by normalised email.
    pub async fn get(&self, email: &str) -> Result<Option<User>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("email", s(email))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("users.get", e))?;
        out.item().map(User::from_item).transpose()
    }

    /// Create a user; `false` when the email is taken.
    pub async fn create(&self, user: &User) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(user.to_item()))
            .condition_expression("attribute_not_exists(email)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = StoreError::from_sdk("users.create", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Count one failed login atomically and return the new count. With `lock_until`, the
    /// same write also locks the account (the caller passes it when this failure reaches the
    /// threshold by its own read).
    pub async fn record_failure(
        &self,
        email: &str,
        lock_until: Option<i64>,
    ) -> Result<u32, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("email", s(email))
            .condition_expression("attribute_exists(email)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew);
        request = match lock_until {
            Some(until) => request
                .update_expression("ADD failedAttempts :one SET lockedUntil = :until")
                .expression_attribute_values(":until", n(until)),
            None => request.update_expression("ADD failedAttempts :one"),
        };
        let out = request
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("users.record_failure", e))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        Ok(
            get_n(&attrs, "failedAttempts", "users.record_failure")?.clamp(0, u32::MAX as i64)
                as u32,
        )
    }

    /// Lock the account until `until` (used when concurrent failures crossed the threshold).
    pub async fn lock(&self, email: &str, until: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("email", s(email))
            .condition_expression("attribute_exists(email)")
            .update_expression("SET lockedUntil = :until")
            .expression_attribute_values(":until", n(until))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("users.lock", e))?;
        Ok(())
    }

    /// After a good login: clear the failure count and any expired lock, and store an
    /// upgraded hash when the policy asks for one. One write.
    pub async fn record_success(
        &self,
        email: &str,
        new_hash: Option<&PasswordHash>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("email", s(email))
            .condition_expression("attribute_exists(email)")
            .expression_attribute_values(":zero", n(0));
        request = match new_hash {
            Some(hash) => request
                .update_expression(
                    "SET failedAttempts = :zero, passwordHash = :hash REMOVE lockedUntil",
                )
                .expression_attribute_values(":hash", s(hash.as_stored())),
            None => request.update_expression("SET failedAttempts = :zero REMOVE lockedUntil"),
        };
        request
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("users.record_success", e))?;
        Ok(())
    }

    /// Void every refresh token issued before `now` (checked at refresh, with the user
    /// read refresh makes anyway). `false` when there is no such user.
    pub async fn end_sessions(&self, email: &str, now: i64) -> Result<bool, StoreError> {
        self.update_existing(
            "users.end_sessions",
            email,
            "SET sessionsNotBefore = :now",
            &[(":now", n(now))],
        )
        .await
    }

    /// Clear a lockout. `false` when there is no such user.
    pub async fn unlock(&self, email: &str) -> Result<bool, StoreError> {
        self.update_existing(
            "users.unlock",
            email,
            "SET failedAttempts = :zero REMOVE lockedUntil",
            &[(":zero", n(0))],
        )
        .await
    }

    /// Disable or re-enable a user. `false` when there is no such user.
    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<bool, StoreError> {
        self.update_existing(
            "users.set_disabled",
            email,
            "SET disabled = :d",
            &[(
                ":d",
                aws_sdk_dynamodb::types::AttributeValue::Bool(disabled),
            )],
        )
        .await
    }

    /// Record the login challenge in force (a newer one voids the older).
    pub async fn set_mfa_challenge(&self, email: &str, jti: &str) -> Result<bool, StoreError> {
        self.update_existing(
            "users.set_mfa_challenge",
            email,
            "SET mfaChallenge = :jti",
            &[(":jti", s(jti))],
        )
        .await
    }

    /// Start an enrolment: a pending sealed secret, unless TOTP is already active.
    pub async fn set_totp_pending(&self, email: &str, sealed: &str) -> Result<bool, StoreError> {
        self.update_if(
            "users.set_totp_pending",
            email,
            "SET totpPending = :p",
            "attribute_exists(email) AND attribute_not_exists(totpSecret)",
            &[(":p", s(sealed))],
        )
        .await
    }

    /// Finish an enrolment: the pending secret (exactly the one the code was checked against)
    /// becomes active, with the step of that code and the recovery codes' digests.
    pub async fn activate_totp(
        &self,
        email: &str,
        pending: &str,
        step: i64,
        recovery_digests: &[String],
    ) -> Result<bool, StoreError> {
        self.update_if(
            "users.activate_totp",
            email,
            "SET totpSecret = :p, totpLastStep = :step, recoveryCodes = :codes REMOVE totpPending",
            "totpPending = :p AND attribute_not_exists(totpSecret)",
            &[
                (":p", s(pending)),
                (":step", n(step)),
                (":codes", AttributeValue::Ss(recovery_digests.to_vec())),
            ],
        )
        .await
    }

    /// Accept a second factor in ONE conditional write: a TOTP step later than any accepted
    /// before (a code works once), or an unused recovery code (then removed). With
    /// `challenge`, also consumes that login challenge (single use) and clears the failure
    /// count; with `disable`, removes the factor altogether. `false`: refused (replayed code,
    /// used recovery code, spent or superseded challenge).
    pub async fn accept_factor(
        &self,
        email: &str,
        proof: FactorProof<'_>,
        challenge: Option<&str>,
        disable: bool,
    ) -> Result<bool, StoreError> {
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut delete = None;
        let mut conditions = vec!["attribute_exists(totpSecret)".to_owned()];
        let mut values: Vec<(&str, AttributeValue)> = Vec::new();
        match proof {
            FactorProof::Step(step) => {
                conditions.push(
                    "(attribute_not_exists(totpLastStep) OR totpLastStep < :step)".to_owned(),
                );
                values.push((":step", n(step)));
                if !disable {
                    set.push("totpLastStep = :step");
                }
            }
            FactorProof::Recovery(digest) => {
                conditions.push("contains(recoveryCodes, :code)".to_owned());
                values.push((":code", s(digest)));
                values.push((":codes", AttributeValue::Ss(vec![digest.to_owned()])));
                if !disable {
                    delete = Some("recoveryCodes :codes");
                }
            }
        }
        if let Some(jti) = challenge {
            conditions.push("mfaChallenge = :jti".to_owned());
            values.push((":jti", s(jti)));
            values.push((":zero", n(0)));
            set.push("failedAttempts = :zero");
            remove.extend(["mfaChallenge", "lockedUntil"]);
        }
        if disable {
            remove.extend([
                "totpSecret",
                "totpPending",
                "totpLastStep",
                "recoveryCodes",
                "mfaChallenge",
            ]);
            values.retain(|(k, _)| *k != ":codes");
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression.push_str(&format!("SET {} ", set.join(", ")));
        }
        if !remove.is_empty() {
            remove.dedup();
            expression.push_str(&format!("REMOVE {} ", remove.join(", ")));
        }
        if let Some(d) = delete {
            expression.push_str(&format!("DELETE {d}"));
        }
        self.update_if(
            "users.accept_factor",
            email,
            expression.trim(),
            &conditions.join(" AND "),
            &values,
        )
        .await
    }

    /// Remove an account that never got its verification mail (sign-up's undo). Only this
    /// account, and only while unverified.
    pub async fn delete_unverified(&self, email: &str, id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("email", s(email))
            .condition_expression("id = :id AND emailVerified = :f")
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = StoreError::from_sdk("users.delete_unverified", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The address is proven: consume the verification token `hash` (single use).
    pub async fn mark_verified(&self, email: &str, hash: &str) -> Result<bool, StoreError> {
        self.update_if(
            "users.mark_verified",
            email,
            "SET emailVerified = :t REMOVE verifyTokenHash, verifyExpiresAt",
            "verifyTokenHash = :h",
            &[(":t", AttributeValue::Bool(true)), (":h", s(hash))],
        )
        .await
    }

    /// Mark an address verified by an operator. `false` when there is no such user.
    pub async fn set_verified(&self, email: &str) -> Result<bool, StoreError> {
        self.update_existing(
            "users.set_verified",
            email,
            "SET emailVerified = :t REMOVE verifyTokenHash, verifyExpiresAt",
            &[(":t", AttributeValue::Bool(true))],
        )
        .await
    }

    /// A new verification token (the older one stops working).
    pub async fn set_verify_token(
        &self,
        email: &str,
        hash: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.set_link_token("users.set_verify_token", "verify", email, hash, expires_at)
            .await
    }

    /// A new reset token (the older one stops working). `false` when there is no such user.
    pub async fn set_reset_token(
        &self,
        email: &str,
        hash: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.set_link_token("users.set_reset_token", "reset", email, hash, expires_at)
            .await
    }

    /// `{kind}TokenHash` and `{kind}ExpiresAt` of a mailed link, replacing the previous ones.
    async fn set_link_token(
        &self,
        op: &'static str,
        kind: &str,
        email: &str,
        hash: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.update_existing(
            op,
            email,
            &format!("SET {kind}TokenHash = :h, {kind}ExpiresAt = :e"),
            &[(":h", s(hash)), (":e", n(expires_at))],
        )
        .await
    }

    /// Withdraw the reset token in force (its mail was never sent).
    pub async fn clear_reset_token(&self, email: &str) -> Result<bool, StoreError> {
        self.update_existing(
            "users.clear_reset_token",
            email,
            "REMOVE resetTokenHash, resetExpiresAt",
            &[],
        )
        .await
    }

    /// Set a new password hash, clear the lockout and void every refresh token issued before
    /// `now`. With `reset_hash`, only if that reset token is still the one in force (and it is
    /// consumed, and the address counts as proven: the link came by mail).
    pub async fn set_password(
        &self,
        email: &str,
        hash: &PasswordHash,
        now: i64,
        reset_hash: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut values = vec![
            (":hash", s(hash.as_stored())),
            (":zero", n(0)),
            (":now", n(now)),
        ];
        let (expression, condition) = match reset_hash {
            Some(h) => {
                values.push((":h", s(h)));
                values.push((":t", AttributeValue::Bool(true)));
                (
                    "SET passwordHash = :hash, failedAttempts = :zero, sessionsNotBefore = :now, \
                     emailVerified = :t REMOVE lockedUntil, resetTokenHash, resetExpiresAt",
                    "resetTokenHash = :h",
                )
            }
            None => (
                "SET passwordHash = :hash, failedAttempts = :zero, sessionsNotBefore = :now \
                 REMOVE lockedUntil",
                "attribute_exists(email)",
            ),
        };
        self.update_if("users.set_password", email, expression, condition, &values)
            .await
    }

    /// Remove the second factor (operator reset). `false` when there is no such user.
    pub async fn reset_mfa(&self, email: &str) -> Result<bool, StoreError> {
        self.update_existing(
            "users.reset_mfa",
            email,
            "REMOVE totpSecret, totpPending, totpLastStep, recoveryCodes, mfaChallenge",
            &[],
        )
        .await
    }

    async fn update_existing(
        &self,
        op: &'static str,
        email: &str,
        expression: &str,
        values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
    ) -> Result<bool, StoreError> {
        self.update_if(op, email, expression, "attribute_exists(email)", values)
            .await
    }

    async fn update_if(
        &self,
        op: &'static str,
        email: &str,
        expression: &str,
        condition: &str,
        values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("email", s(email))
            .condition_expression(condition)
            .update_expression(expression);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = StoreError::from_sdk(op, e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}
