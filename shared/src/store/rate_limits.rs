//! Fixed-window counters (login rate limiting), shared by every container through DynamoDB.
//! Table: hash key `pk` (S); TTL `expiresAt`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{get_n, n, s};
use crate::config::RateLimit;
use crate::error::StoreError;

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub count: u64,
    pub allowed: bool,
    /// Seconds until the window ends (for `Retry-After`).
    pub retry_after: i64,
}

#[derive(Debug, Clone)]
pub struct RateLimitStore {
    client: Client,
    table: String,
}

impl RateLimitStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Count one request for `subject` (e.g. `login#203.0.113.9`) in the current window:
    /// one atomic UpdateItem. A new window gets a new item, so an expired counter that TTL
    /// has not yet deleted is simply never read again.
    pub async fn hit(&self, subject: &str, limit: RateLimit, now: i64) -> Result<Hit, StoreError> {
        let window_start = now - now.rem_euclid(limit.window_seconds);
        let window_end = window_start + limit.window_seconds;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("{subject}#{window_start}")))
            .update_expression("ADD hits :one SET expiresAt = if_not_exists(expiresAt, :end)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":end", n(window_end))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("rate_limits.hit", e))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let count = get_n(&attrs, "hits", "rate_limits.hit")?.max(0) as u64;
        Ok(Hit {
            count,
            allowed: count <= limit.max,
            retry_after: (window_end - now).max(1),
        })
    }
}
