//! Fixed-window counters (login rate limiting), shared by every container through DynamoDB.
//! Table: hash key `pk` (S); TTL `expiresAt`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ReturnValue, TransactWriteItem, Update};

use super::{built, get_n, n, s};
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

    /// Count one request against several limits at once (e.g. per client and per IP): ONE
    /// TransactWriteItems request. Each counter only counts while under its limit; if any is
    /// full, nothing is counted and the answer is the longest wait (seconds until that
    /// window ends) — `Ok(Some(retry_after))`; `Ok(None)` means allowed.
    pub async fn hit_all(
        &self,
        limits: &[(&str, RateLimit)],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "rate_limits.hit_all";
        let window_end =
            |limit: RateLimit| now - now.rem_euclid(limit.window_seconds) + limit.window_seconds;
        let mut request = self.client.transact_write_items();
        for (subject, limit) in limits {
            let window_start = window_end(*limit) - limit.window_seconds;
            let update = built(
                OP,
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(format!("{subject}#{window_start}")))
                    .update_expression(
                        "ADD hits :one SET expiresAt = if_not_exists(expiresAt, :end)",
                    )
                    .condition_expression("attribute_not_exists(hits) OR hits < :max")
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":end", n(window_end(*limit)))
                    .expression_attribute_values(":max", n(limit.max))
                    .build(),
            )?;
            request = request.transact_items(TransactWriteItem::builder().update(update).build());
        }
        let err = match request.send().await {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        {
            let full: Vec<i64> = cancel
                .cancellation_reasons()
                .iter()
                .zip(limits)
                .filter(|(reason, _)| reason.code() == Some("ConditionalCheckFailed"))
                .map(|(_, (_, limit))| (window_end(*limit) - now).max(1))
                .collect();
            if let Some(wait) = full.into_iter().max() {
                return Ok(Some(wait));
            }
        }
        Err(StoreError::from_sdk(OP, err))
    }
}
