//! Users, keyed by normalised email so that login finds one in ONE consistent read.
//! Table: hash key `email` (S); GSI `byId` on `id`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{Item, get_bool, get_n, get_opt_n, get_s, n, s};
use crate::error::{StoreError, StoreErrorKind};
use crate::password::PasswordHash;

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

    async fn update_existing(
        &self,
        op: &'static str,
        email: &str,
        expression: &str,
        values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("email", s(email))
            .condition_expression("attribute_exists(email)")
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
