//! API-key validation for service-to-service calls: ONE DynamoDB read per validation, and a
//! last-used write at most once per key per interval. A bounded cache of positive results
//! (`KeyCache`) lets a container skip even that read for a configured number of seconds.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::error::Error;
use crate::store::ApiKeyStore;
use crate::store::api_keys::{ApiKeyRecord, key_id, matches};

/// What validation needs of its surroundings: the key table and the last-used interval.
/// `AppState` provides it; so can anything else that holds an `ApiKeyStore`.
pub trait KeyContext {
    fn api_keys(&self) -> &ApiKeyStore;
    /// At most one last-used write per key per this many seconds.
    fn last_used_interval(&self) -> i64;
}

/// What a valid key tells the caller (never the key or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// RFC 3339, or null for keys that never expire.
    pub expires_at: Option<String>,
    /// The same expiry as a Unix time, for the cache (not part of any answer).
    #[serde(skip)]
    pub expires_at_unix: Option<i64>,
}

/// RFC 3339 (UTC) for a Unix time.
pub fn rfc3339(seconds: i64) -> String {
    use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
    DateTime::from_secs(seconds)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

impl From<&ApiKeyRecord> for KeyInfo {
    fn from(record: &ApiKeyRecord) -> Self {
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            scopes: record.scopes.clone(),
            expires_at: record.expires_at.map(rfc3339),
            expires_at_unix: record.expires_at,
        }
    }
}

/// Validate the `x-api-key` value. Errors: `MISSING_API_KEY`, `INVALID_API_KEY` (unknown,
/// wrong secret, revoked), `API_KEY_EXPIRED`, or 503 when DynamoDB fails (fail closed).
pub async fn validate(
    state: &impl KeyContext,
    key: Option<&str>,
    now: i64,
) -> Result<KeyInfo, Error> {
    let key = key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(Error::MissingApiKey)?;
    let id = key_id(key).ok_or(Error::InvalidApiKey)?;
    let record = state
        .api_keys()
        .get(id)
        .await?
        .ok_or(Error::InvalidApiKey)?;
    if !matches(&record, key) || record.revoked {
        tracing::info!(audit = "api_key_refused", key_id = %record.id, revoked = record.revoked, "api key");
        return Err(Error::InvalidApiKey);
    }
    if record.is_expired(now) {
        tracing::info!(audit = "api_key_expired", key_id = %record.id, "api key");
        return Err(Error::ApiKeyExpired);
    }
    let interval = state.last_used_interval();
    if record.last_used_at.is_none_or(|at| now - at >= interval) {
        // Best effort: a failed bookkeeping write must not turn a valid key away.
        if let Err(e) = state.api_keys().touch(&record.id, now, interval).await {
            tracing::warn!(error = %e, key_id = %record.id, "last-used update failed");
        }
    }
    Ok(KeyInfo::from(&record))
}

/// Most API keys one container's cache holds.
pub const MAX_CACHED_KEYS: usize = 10_000;

/// A per-container cache of keys that validated, by the SHA-256 of the key: at most
/// `MAX_CACHED_KEYS` entries, each trusted until `now + ttl` or the key's own expiry,
/// whichever comes first. Refusals are never cached, so a new key works at once and a
/// failing store is asked again on the next request. A revoked key passes for up to `ttl`.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (i64, KeyInfo)>>,
}

/// Only the size: the map is keyed by digests of keys, which stay out of logs.
impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("KeyCache").field("entries", &len).finish()
    }
}

impl KeyCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, digest: &str, now: i64) -> Option<KeyInfo> {
        let entries = self.entries.lock().ok()?;
        let (until, info) = entries.get(digest)?;
        (now < *until).then(|| info.clone())
    }

    fn insert(&self, digest: String, info: &KeyInfo, until: i64, now: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_CACHED_KEYS && !entries.contains_key(&digest) {
            // Full: drop what has expired; if that frees nothing, start over (bounded memory).
            entries.retain(|_, (until, _)| now < *until);
            if entries.len() >= MAX_CACHED_KEYS {
                entries.clear();
            }
        }
        entries.insert(digest, (until, info.clone()));
    }

    /// `validate`, answered from the cache while a positive result is fresh: no DynamoDB
    /// request then (nor a last-used write: that is recorded when the key is read again).
    /// `ttl` 0 disables the cache.
    pub async fn validate(
        &self,
        state: &impl KeyContext,
        key: Option<&str>,
        ttl: i64,
        now: i64,
    ) -> Result<KeyInfo, Error> {
        let digest = key
            .map(str::trim)
            .filter(|k| ttl > 0 && !k.is_empty())
            .map(crate::ids::digest);
        if let Some(info) = digest.as_deref().and_then(|d| self.get(d, now)) {
            return Ok(info);
        }
        let info = validate(state, key, now).await?;
        if let Some(digest) = digest {
            let until = info
                .expires_at_unix
                .map_or(now + ttl, |exp| exp.min(now + ttl));
            self.insert(digest, &info, until, now);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
