//! Revoked access tokens, so the authorizer can reject them before they expire.
//! Table: hash key `pk` (S), range key `sk` (S); TTL `expiresAt`.
//!
//! Every entry lives in the partition `pk = "revoked"` with `sk = <expiresAt, 12 digits>#<kind>#<id>`,
//! so ONE Query with `sk >= <now + 1>` returns exactly the entries still in force — expired
//! entries that TTL has not deleted yet are never read. The set is small: an entry lives only
//! as long as the longest access token it can affect.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;

use super::{Item, get_n, get_s, n, s};
use crate::error::StoreError;

const PARTITION: &str = "revoked";

/// The revocations in force at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationSet {
    /// Revoked access-token ids.
    pub jtis: HashSet<String>,
    /// User id -> every access token of that user issued before this second is revoked (a token of the
    /// same second is not: a login right after "log out everywhere" must work; tokens minted
    /// in that very second before the logout are few and short-lived).
    pub users: HashMap<String, i64>,
}

impl RevocationSet {
    /// Whether an access token (`jti`, `sub`, `iat`) is revoked.
    pub fn is_revoked(&self, jti: &str, sub: &str, iat: i64) -> bool {
        self.jtis.contains(jti)
            || self
                .users
                .get(sub)
                .is_some_and(|not_before| iat < *not_before)
    }

    pub fn len(&self) -> usize {
        self.jtis.len() + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct RevokedStore {
    client: Client,
    table: String,
}

fn sort_key(expires_at: i64, kind: &str, id: &str) -> String {
    format!("{:012}#{kind}#{id}", expires_at.max(0))
}

impl RevokedStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn put(
        &self,
        op: &'static str,
        kind: &str,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let item = Item::from([
            ("pk".into(), s(PARTITION)),
            ("sk".into(), s(sort_key(expires_at, kind, id))),
            ("kind".into(), s(kind)),
            ("id".into(), s(id)),
            ("revokedAt".into(), n(now)),
            ("expiresAt".into(), n(expires_at)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(op, e))?;
        Ok(())
    }

    /// Revoke one access token until it expires anyway.
    pub async fn revoke_jti(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        self.put("revoked.revoke_jti", "jti", jti, expires_at, now)
            .await
    }

    /// Whether one token (by `jti` and its `exp`, which together make the entry's key) has
    /// been revoked: one strongly consistent GetItem, for callers that check a single token
    /// (introspection) rather than hold the whole list (the authorizer).
    pub async fn is_jti_revoked(&self, jti: &str, expires_at: i64) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(PARTITION))
            .key("sk", s(sort_key(expires_at, "jti", jti)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("revoked.is_jti_revoked", e))?;
        Ok(out.item().is_some())
    }

    /// Revoke every access token of `user_id` issued before `now`; the entry lasts as
    /// long as the longest access token (`access_ttl`). Any token subject works: an OAuth
    /// client's id revokes the tokens it got by the client credentials grant.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        now: i64,
        access_ttl: i64,
    ) -> Result<(), StoreError> {
        self.put(
            "revoked.revoke_user",
            "user",
            user_id,
            now + access_ttl,
            now,
        )
        .await
    }

    /// Everything in force at `now`: one (paginated) strongly consistent Query.
    /// Refuses to load more than `max_entries` (the caller fails closed).
    pub async fn load(&self, now: i64, max_entries: usize) -> Result<RevocationSet, StoreError> {
        const OP: &str = "revoked.load";
        let mut set = RevocationSet::default();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                // In force while now < expiresAt, i.e. expiresAt >= now + 1.
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":pk", s(PARTITION))
                .expression_attribute_values(":from", s(format!("{:012}", now.max(0) + 1)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::from_sdk(OP, e))?;
            for item in page.items() {
                let id = get_s(item, "id", OP)?;
                match get_s(item, "kind", OP)?.as_str() {
                    "jti" => {
                        set.jtis.insert(id);
                    }
                    "user" => {
                        let at = get_n(item, "revokedAt", OP)?;
                        let entry = set.users.entry(id).or_insert(at);
                        *entry = (*entry).max(at);
                    }
                    _ => {}
                }
                if set.len() > max_entries {
                    return Err(StoreError::corrupt(
                        OP,
                        format!("more than {max_entries} revocations in force"),
                    ));
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_by_expiry() {
        assert_eq!(
            sort_key(1_800_000_000, "jti", "at_1"),
            "001800000000#jti#at_1"
        );
        assert!(sort_key(999, "jti", "a") < sort_key(1000, "jti", "a"));
        assert!(format!("{:012}", 1000) < sort_key(1001, "user", "u"));
        assert!(format!("{:012}", 1001) > sort_key(1000, "user", "u"));
    }

    #[test]
    fn revocation_set_checks_jti_and_user_cutoff() {
        let mut set = RevocationSet::default();
        set.jtis.insert("at_1".into());
        set.users.insert("usr_2".into(), 100);
        assert!(set.is_revoked("at_1", "usr_1", 0));
        assert!(!set.is_revoked("at_9", "usr_1", 0));
        assert!(set.is_revoked("at_9", "usr_2", 99));
        assert!(set.is_revoked("at_9", "usr_2", 50));
        assert!(
            !set.is_revoked("at_9", "usr_2", 100),
            "a login in the logout's own second works"
        );
        assert_eq!(set.len(), 2);
    }
}
