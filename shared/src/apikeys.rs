//! API-key validation for service-to-service calls: ONE DynamoDB read per validation, and a
//! last-used write at most once per key per interval.

use serde::Serialize;

use crate::error::Error;
use crate::state::AppState;
use crate::store::api_keys::{ApiKeyRecord, key_id, matches};

/// What a valid key tells the caller (never the key or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// RFC 3339, or null for keys that never expire.
    pub expires_at: Option<String>,
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
        }
    }
}

/// Validate the `x-api-key` value. Errors: `MISSING_API_KEY`, `INVALID_API_KEY` (unknown,
/// wrong secret, revoked), `API_KEY_EXPIRED`, or 503 when DynamoDB fails (fail closed).
pub async fn validate(state: &AppState, key: Option<&str>, now: i64) -> Result<KeyInfo, Error> {
    let key = key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(Error::MissingApiKey)?;
    let id = key_id(key).ok_or(Error::InvalidApiKey)?;
    let record = state.api_keys.get(id).await?.ok_or(Error::InvalidApiKey)?;
    if !matches(&record, key) || record.revoked {
        tracing::info!(audit = "api_key_refused", key_id = %record.id, revoked = record.revoked, "api key");
        return Err(Error::InvalidApiKey);
    }
    if record.is_expired(now) {
        tracing::info!(audit = "api_key_expired", key_id = %record.id, "api key");
        return Err(Error::ApiKeyExpired);
    }
    let interval = state.config.api_key_last_used_interval;
    if record.last_used_at.is_none_or(|at| now - at >= interval) {
        // Best effort: a failed bookkeeping write must not turn a valid key away.
        if let Err(e) = state.api_keys.touch(&record.id, now, interval).await {
            tracing::warn!(error = %e, key_id = %record.id, "last-used update failed");
        }
    }
    Ok(KeyInfo::from(&record))
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
