//! Refresh tokens, stored ONLY as the SHA-256 of the token.
//! Table: hash key `tokenHash` (S); GSIs `byUser` (`userId`) and `byFamily` (`familyId`);
//! TTL `expiresAt`.

use aws_sdk_dynamodb::Client;

use super::{Item, get_n, get_opt_n, get_s, n, s};
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
