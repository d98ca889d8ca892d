//! API keys, stored ONLY as the SHA-256 of the key.
//! Table: hash key `keyId` (S); TTL `expiresAt` (only keys that expire carry it).
//!
//! A key reads `ak_<id>_<secret>`: `<id>` (22 base64url characters) is the non-secret lookup
//! part and the table key, `<secret>` is 256 random bits. Validation is ONE GetItem by id and a
//! constant-time comparison of the key's digest with the stored one.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use super::{Item, get_bool, get_n, get_opt_n, get_s, n, s};
use crate::error::{StoreError, StoreErrorKind};

const ID_LEN: usize = 22;
const SECRET_LEN: usize = 43;
pub const KEY_PREFIX: &str = "ak_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// SHA-256 of the whole key (`crate::ids::digest`).
    pub key_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    pub last_used_at: Option<i64>,
}

impl ApiKeyRecord {
    fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("keyId".into(), s(&self.id)),
            ("name".into(), s(&self.name)),
            (
                "scopes".into(),
                AttributeValue::L(self.scopes.iter().map(s).collect()),
            ),
            ("keyHash".into(), s(&self.key_hash)),
            ("createdAt".into(), n(self.created_at)),
            ("revoked".into(), AttributeValue::Bool(self.revoked)),
        ]);
        if let Some(at) = self.expires_at {
            item.insert("expiresAt".into(), n(at));
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        const OP: &str = "api_keys.read";
        let scopes = match item.get("scopes") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .filter_map(|v| match v {
                    AttributeValue::S(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            id: get_s(item, "keyId", OP)?,
            name: get_s(item, "name", OP)?,
            scopes,
            key_hash: get_s(item, "keyHash", OP)?,
            created_at: get_n(item, "createdAt", OP)?,
            expires_at: get_opt_n(item, "expiresAt"),
            revoked: get_bool(item, "revoked"),
            last_used_at: get_opt_n(item, "lastUsedAt"),
        })
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A freshly made key: the full key (shown once) and its record.
pub struct NewApiKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewApiKey(id={}, key=<redacted>)", self.record.id)
    }
}

/// Make a new key (not stored yet).
pub fn generate(name: &str, scopes: Vec<String>, now: i64, expires_at: Option<i64>) -> NewApiKey {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let id = crate::ids::alphanumeric(ID_LEN);
    let key = format!("{KEY_PREFIX}{id}_{}", b64.encode(secret));
    NewApiKey {
        record: ApiKeyRecord {
            id,
            name: name.to_owned(),
            scopes,
            key_hash: crate::ids::digest(&key),
            created_at: now,
            expires_at,
            revoked: false,
            last_used_at: None,
        },
        key,
    }
}

/// The lookup id of a well-formed key, or `None`.
pub fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN || rest.as_bytes().get(ID_LEN) != Some(&b'_') {
        return None;
    }
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    rest.bytes().all(ok).then(|| &rest[..ID_LEN])
}

/// Whether `key` hashes to `record.key_hash` (constant-time).
pub fn matches(record: &ApiKeyRecord, key: &str) -> bool {
    bool::from(
        crate::ids::digest(key)
            .as_bytes()
            .ct_eq(record.key_hash.as_bytes()),
    )
}

#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    client: Client,
    table: String,
}

impl ApiKeyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub async fn put(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .condition_expression("attribute_not_exists(keyId)")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("api_keys.put", e))?;
        Ok(())
    }

    /// One consistent GetItem (a revocation takes effect at once).
    pub async fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("keyId", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("api_keys.get", e))?;
        out.item().map(ApiKeyRecord::from_item).transpose()
    }

    /// Every key, for `portcullis key list` (a Scan: admin use only, never a request path).
    pub async fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut out = super::scan_all(
            &self.client,
            &self.table,
            "api_keys.list",
            ApiKeyRecord::from_item,
        )
        .await?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Revoke at once. `false` when there is no such key.
    pub async fn revoke(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("keyId", s(id))
            .update_expression("SET revoked = :t, revokedAt = :now")
            .condition_expression("attribute_exists(keyId)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = StoreError::from_sdk("api_keys.revoke", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Record a use, at most once per `interval` seconds per key: the condition makes every
    /// other concurrent or too-early write a no-op. `true` when this call wrote.
    pub async fn touch(&self, id: &str, now: i64, interval: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("keyId", s(id))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression("attribute_exists(keyId) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt <= :before)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":before", n(now - interval))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = StoreError::from_sdk("api_keys.touch", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_only_themselves() {
        let new = generate("ci", vec!["read".into()], 1, None);
        assert!(new.key.starts_with("ak_"));
        assert_eq!(new.key.len(), 3 + 22 + 1 + 43);
        assert_eq!(key_id(&new.key), Some(new.record.id.as_str()));
        assert!(new.record.id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(matches(&new.record, &new.key));
        let other = generate("ci", vec![], 1, None);
        assert!(!matches(&new.record, &other.key));
        assert!(
            !new.record.key_hash.contains(&new.key[25..]),
            "only the digest is kept"
        );
        assert!(!format!("{new:?}").contains(&new.key));
    }

    #[test]
    fn malformed_keys_have_no_id() {
        let good = generate("x", vec![], 1, None).key;
        for bad in [
            "",
            "ak_",
            "ak_short_secret",
            &good[1..],
            &format!("{good}x"),
            &good.replace("ak_", "pk_"),
            &format!("ak_{}", "€".repeat(22)),
            &good.replacen('_', "-", 2),
        ] {
            assert_eq!(key_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_is_checked_in_code() {
        let mut rec = generate("x", vec![], 1, Some(100)).record;
        assert!(!rec.is_expired(99));
        assert!(rec.is_expired(100));
        rec.expires_at = None;
        assert!(!rec.is_expired(i64::MAX));
    }
}
