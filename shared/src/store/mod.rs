//! DynamoDB stores. Item <-> domain conversion lives here, beside the calls, and nowhere else.
//! Every expiring item carries `expiresAt` (the table's TTL attribute); because TTL deletes
//! lazily, every read checks expiry itself.

pub mod api_keys;
pub mod clients;
pub mod rate_limits;
pub mod refresh_tokens;
pub mod revoked;
pub mod users;
pub mod web;

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use crate::error::StoreError;

pub use api_keys::{ApiKeyRecord, ApiKeyStore};
pub use clients::{ClientRecord, ClientStore};
pub use rate_limits::RateLimitStore;
pub use refresh_tokens::{RefreshRecord, RefreshStatus, RefreshTokenStore, RotateRefused};
pub use revoked::{RevocationSet, RevokedStore};
pub use users::{User, UserStore};
pub use web::{AuthCode, WebSession, WebStore};

/// The name of the TTL attribute on every table that expires items.
pub const TTL_ATTRIBUTE: &str = "expiresAt";

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn get_s(item: &Item, name: &str, op: &'static str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::corrupt(
            op,
            format!("attribute {name} missing or not a string"),
        )),
    }
}

pub(crate) fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(crate) fn get_n(item: &Item, name: &str, op: &'static str) -> Result<i64, StoreError> {
    get_opt_n(item, name)
        .ok_or_else(|| StoreError::corrupt(op, format!("attribute {name} missing or not a number")))
}

pub(crate) fn get_opt_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(crate) fn get_bool(item: &Item, name: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

/// Every item of a table, through the Scan's pages, each made a record by `from_item`. For the
/// admin CLI's listings only (a Scan is never on a request path).
pub(crate) async fn scan_all<T>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    op: &'static str,
    from_item: impl Fn(&Item) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(op, e))?;
        for item in page.items() {
            out.push(from_item(item)?);
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    Ok(out)
}

/// Turn a builder's missing-field error into a store error (a bug, never user input).
pub(crate) fn built<T>(
    op: &'static str,
    result: Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::corrupt(op, format!("request build: {e}")))
}
