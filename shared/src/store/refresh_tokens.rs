//! Refresh tokens, stored ONLY as the SHA-256 of the token.
//! Table: hash key `tokenHash` (S); GSIs `byUser` (`userId`) and `byFamily` (`familyId`);
//! TTL `expiresAt`.

use aws_sdk_dynamodb::Client;

use super::{Item, get_n, get_opt_n, get_opt_s, get_s, n, s};
use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStatus {
    Active,
    Spent,
    Revoked,
}

impl RefreshStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Spent => "spent",
            Self::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "spent" => Some(Self::Spent),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token (see `crate::ids::digest`).
    pub token_hash: String,
    pub user_id: String,
    pub email: String,
    pub family_id: String,
    pub status: RefreshStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
}

impl RefreshRecord {
    /// Usable now: active and not past its expiry (TTL may not have deleted it yet).
    pub fn is_live(&self, now: i64) -> bool {
        self.status == RefreshStatus::Active && self.expires_at > now
    }

    pub(crate) fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("tokenHash".into(), s(&self.token_hash)),
            ("userId".into(), s(&self.user_id)),
            ("email".into(), s(&self.email)),
            ("familyId".into(), s(&self.family_id)),
            ("status".into(), s(self.status.as_str())),
            ("createdAt".into(), n(self.created_at)),
            ("expiresAt".into(), n(self.expires_at)),
        ]);
        if let Some(at) = self.spent_at {
            item.insert("spentAt".into(), n(at));
        }
        item
    }

    pub(crate) fn from_item(item: &Item) -> Result<Self, StoreError> {
        const OP: &str = "refresh_tokens.read";
        let status = get_s(item, "status", OP)?;
        Ok(Self {
            token_hash: get_s(item, "tokenHash", OP)?,
            user_id: get_s(item, "userId", OP)?,
            email: get_s(item, "email", OP)?,
            family_id: get_s(item, "familyId", OP)?,
            status: RefreshStatus::parse(&status)
                .ok_or_else(|| StoreError::corrupt(OP, "unknown status"))?,
            created_at: get_n(item, "createdAt", OP)?,
            expires_at: get_n(item, "expiresAt", OP)?,
            spent_at: get_opt_n(item, "spentAt"),
        })
    }
}

#[derive(Debug, Clone)]
pub struct RefreshTokenStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl RefreshTokenStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Store a new token record (never overwriting one).
    pub async fn put(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .condition_expression("attribute_not_exists(tokenHash)")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("refresh_tokens.put", e))?;
        Ok(())
    }

    /// One consistent read by token hash.
    pub async fn get(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("tokenHash", s(token_hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("refresh_tokens.get", e))?;
        out.item().map(RefreshRecord::from_item).transpose()
    }
}

/// Why a rotation did not happen, read from the presented token's stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateRefused {
    /// No item: never issued by us, or deleted by TTL.
    Unknown,
    /// The item is not this user's.
    WrongUser,
    /// Past its expiry (TTL has not deleted it yet).
    Expired,
    /// Already revoked (logout or reuse detection).
    Revoked,
    /// Already spent: a second presentation. Carries when it was spent.
    Spent { spent_at: i64, family_id: String },
}

impl RefreshTokenStore {
    /// Spend `old_hash` and store `new` in ONE transaction. Exactly one of any number of
    /// concurrent rotations of the same token succeeds; the others learn why they lost from
    /// the old item DynamoDB returns with the cancellation.
    pub async fn rotate(
        &self,
        old_hash: &str,
        user_id: &str,
        new: &RefreshRecord,
        now: i64,
    ) -> Result<Result<(), RotateRefused>, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{
            Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
        };

        const OP: &str = "refresh_tokens.rotate";
        let spend = super::built(
            OP,
            Update::builder()
                .table_name(&self.table)
                .key("tokenHash", s(old_hash))
                .update_expression("SET #st = :spent, spentAt = :now, replacedBy = :next")
                .condition_expression("#st = :active AND userId = :uid AND expiresAt > :now")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":spent", s(RefreshStatus::Spent.as_str()))
                .expression_attribute_values(":active", s(RefreshStatus::Active.as_str()))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":next", s(&new.token_hash))
                .expression_attribute_values(":uid", s(user_id))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build(),
        )?;
        let put = super::built(
            OP,
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(new.to_item()))
                .condition_expression("attribute_not_exists(tokenHash)")
                .build(),
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(spend).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Ok(())),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        {
            let reasons = cancel.cancellation_reasons();
            let first = reasons.first();
            if first.and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
                let Some(old) = first.and_then(|r| r.item()) else {
                    return Ok(Err(RotateRefused::Unknown));
                };
                let old = RefreshRecord::from_item(old)?;
                return Ok(Err(if old.user_id != user_id {
                    RotateRefused::WrongUser
                } else {
                    match old.status {
                        RefreshStatus::Revoked => RotateRefused::Revoked,
                        RefreshStatus::Spent => RotateRefused::Spent {
                            spent_at: old.spent_at.unwrap_or(0),
                            family_id: old.family_id,
                        },
                        RefreshStatus::Active => RotateRefused::Expired,
                    }
                }));
            }
            // Any other cancellation (a conflicting concurrent transaction, throttling) is a
            // store fault: the caller answers 503 and nothing was written.
            let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("-")).collect();
            let kind = if codes.iter().any(|c| {
                matches!(
                    *c,
                    "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                )
            }) {
                crate::error::StoreErrorKind::Throttled
            } else {
                crate::error::StoreErrorKind::Other
            };
            return Err(StoreError::new(
                kind,
                OP,
                format!("transaction cancelled: {codes:?}"),
            ));
        }
        Err(StoreError::from_sdk(OP, err))
    }

    /// The UpdateItem that marks one token revoked; callers add their condition.
    fn revoke_request(
        &self,
        token_hash: &str,
        now: i64,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("tokenHash", s(token_hash))
            .update_expression("SET #st = :revoked, revokedAt = :now")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":revoked", s(RefreshStatus::Revoked.as_str()))
            .expression_attribute_values(":now", n(now))
    }

    /// Revoke one token if it belongs to `user_id`. `Ok(None)` when there is no such token;
    /// `Ok(Some(old))` with the item as it was (its owner may differ: then nothing changed).
    pub async fn revoke_owned(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        const OP: &str = "refresh_tokens.revoke_owned";
        let result = self
            .revoke_request(token_hash, now)
            .condition_expression("attribute_exists(tokenHash) AND userId = :uid")
            .expression_attribute_values(":uid", s(user_id))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes().map(RefreshRecord::from_item).transpose(),
            Err(e) => {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
                if let Some(UpdateItemError::ConditionalCheckFailedException(c)) =
                    e.as_service_error()
                {
                    return c.item().map(RefreshRecord::from_item).transpose();
                }
                Err(StoreError::from_sdk(OP, e))
            }
        }
    }

    /// Mark one token revoked (whatever its state). Idempotent.
    async fn revoke_hash(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        let result = self
            .revoke_request(token_hash, now)
            .condition_expression("attribute_exists(tokenHash)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = StoreError::from_sdk("refresh_tokens.revoke", e);
                if err.kind == crate::error::StoreErrorKind::ConditionFailed {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Every token hash of a GSI partition (`byUser` or `byFamily`), with its status.
    async fn query_index(
        &self,
        index: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attribute)
                .expression_attribute_values(":v", s(value))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("refresh_tokens.query", e))?;
            for item in page.items() {
                let hash = get_s(item, "tokenHash", "refresh_tokens.query")?;
                let status = get_s(item, "status", "refresh_tokens.query")?;
                out.push((hash, status));
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Revoke every token of a login family (reuse detection). Walks the `replacedBy` chain
    /// from `from_hash` (when the caller holds a member) with consistent reads — so the
    /// newest token is revoked even while the `byFamily` index lags — and then the index for
    /// any other member. Returns how many tokens it revoked.
    pub async fn revoke_family(
        &self,
        family_id: &str,
        from_hash: Option<&str>,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut revoked = std::collections::HashSet::new();
        let mut next = from_hash.map(str::to_owned);
        while let Some(hash) = next.take() {
            if revoked.len() >= 10_000 || !revoked.insert(hash.clone()) {
                break;
            }
            let item = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("tokenHash", s(&hash))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("refresh_tokens.revoke_family", e))?;
            let Some(item) = item.item() else { break };
            if get_opt_s(item, "familyId").as_deref() != Some(family_id) {
                break;
            }
            self.revoke_hash(&hash, now).await?;
            next = get_opt_s(item, "replacedBy");
        }
        for (hash, status) in self.query_index("byFamily", "familyId", family_id).await? {
            if status != RefreshStatus::Revoked.as_str() && revoked.insert(hash.clone()) {
                self.revoke_hash(&hash, now).await?;
            }
        }
        Ok(revoked.len())
    }

    /// Revoke every live token of a user (logout from all sessions). Returns how many.
    pub async fn revoke_user(&self, user_id: &str, now: i64) -> Result<usize, StoreError> {
        let mut count = 0;
        for (hash, status) in self.query_index("byUser", "userId", user_id).await? {
            if status == RefreshStatus::Active.as_str() {
                self.revoke_hash(&hash, now).await?;
                count += 1;
            }
        }
        Ok(count)
    }
}
