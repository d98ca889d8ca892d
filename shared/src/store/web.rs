//! Browser sessions, authorization codes and remembered consents: one table, hash key `pk`
//! (S) with a prefix per kind, GSI `byUser` on `userId`, TTL on `expiresAt`.
//!
//! - `s#<sha256(session id)>`: a signed-in browser. The id itself (256 random bits) lives
//!   only in the `__Host-` cookie; the table holds its hash, so a table dump signs nobody in.
//! - `c#<sha256(code)>`: an authorization code, bound to its client, redirect URI, PKCE
//!   challenge and user; redeemed at most once by one conditional write.
//! - `g#<user id>#<client id>`: the scopes a user consented to for a client.
//!
//! TTL deletes lazily, so every read checks expiry and idleness itself.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{Item, get_n, get_opt_n, get_opt_s, get_s, n, s};
use crate::error::{StoreError, StoreErrorKind};

const SESSION: &str = "s#";
const CODE: &str = "c#";
const CONSENT: &str = "g#";

/// A browser session as stored (the id's hash, never the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id_hash: String,
    pub user_id: String,
    pub email: String,
    pub role: String,
    /// When the user signed in (OIDC `auth_time`).
    pub created_at: i64,
    /// Last request seen (updated at most once per `SESSION_TOUCH_INTERVAL`).
    pub last_seen_at: i64,
    /// `created_at` + the absolute timeout (also the TTL).
    pub expires_at: i64,
    /// Signed in with a second factor.
    pub mfa: bool,
}

/// At most one last-seen write per session per this many seconds: the idle timeout is kept
/// to within this much, without a write on every request.
pub const SESSION_TOUCH_INTERVAL: i64 = 60;

impl WebSession {
    /// Whether the session is still in force at `now` with idle timeout `idle`.
    pub fn is_live(&self, now: i64, idle: i64) -> bool {
        now < self.expires_at && now - self.last_seen_at < idle && now >= self.created_at - 5
    }

    /// Whether this request should record the session as seen.
    pub fn needs_touch(&self, now: i64) -> bool {
        now - self.last_seen_at >= SESSION_TOUCH_INTERVAL
    }

    fn to_item(&self) -> Item {
        Item::from([
            ("pk".into(), s(format!("{SESSION}{}", self.id_hash))),
            ("userId".into(), s(&self.user_id)),
            ("email".into(), s(&self.email)),
            ("role".into(), s(&self.role)),
            ("createdAt".into(), n(self.created_at)),
            ("lastSeenAt".into(), n(self.last_seen_at)),
            ("expiresAt".into(), n(self.expires_at)),
            ("mfa".into(), AttributeValue::Bool(self.mfa)),
        ])
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        const OP: &str = "web.session.read";
        let pk = get_s(item, "pk", OP)?;
        Ok(Self {
            id_hash: pk.strip_prefix(SESSION).unwrap_or(&pk).to_owned(),
            user_id: get_s(item, "userId", OP)?,
            email: get_s(item, "email", OP)?,
            role: get_s(item, "role", OP)?,
            created_at: get_n(item, "createdAt", OP)?,
            last_seen_at: get_n(item, "lastSeenAt", OP)?,
            expires_at: get_n(item, "expiresAt", OP)?,
            mfa: super::get_bool(item, "mfa"),
        })
    }
}

/// An authorization code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: String,
    pub user_id: String,
    pub email: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    /// Set by the one successful redemption, with what it issued (so a replay can revoke it).
    pub used_at: Option<i64>,
    pub family_id: Option<String>,
    pub access_jti: Option<String>,
    pub access_exp: Option<i64>,
}

impl AuthCode {
    fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("pk".into(), s(format!("{CODE}{}", self.code_hash))),
            ("clientId".into(), s(&self.client_id)),
            ("redirectUri".into(), s(&self.redirect_uri)),
            ("codeChallenge".into(), s(&self.code_challenge)),
            ("userId".into(), s(&self.user_id)),
            ("email".into(), s(&self.email)),
            ("scope".into(), s(&self.scope)),
            ("authTime".into(), n(self.auth_time)),
            ("expiresAt".into(), n(self.expires_at)),
        ]);
        if let Some(nonce) = &self.nonce {
            item.insert("nonce".into(), s(nonce));
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        const OP: &str = "web.code.read";
        let pk = get_s(item, "pk", OP)?;
        Ok(Self {
            code_hash: pk.strip_prefix(CODE).unwrap_or(&pk).to_owned(),
            client_id: get_s(item, "clientId", OP)?,
            redirect_uri: get_s(item, "redirectUri", OP)?,
            code_challenge: get_s(item, "codeChallenge", OP)?,
            user_id: get_s(item, "userId", OP)?,
            email: get_s(item, "email", OP)?,
            scope: get_opt_s(item, "scope").unwrap_or_default(),
            nonce: get_opt_s(item, "nonce"),
            auth_time: get_n(item, "authTime", OP)?,
            expires_at: get_n(item, "expiresAt", OP)?,
            used_at: get_opt_n(item, "usedAt"),
            family_id: get_opt_s(item, "familyId"),
            access_jti: get_opt_s(item, "accessJti"),
            access_exp: get_opt_n(item, "accessExp"),
        })
    }
}

/// What the redemption records, in the same write that marks the code used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// S256 of the verifier the client presented: the write succeeds only if it equals the
    /// stored challenge.
    pub challenge: &'a str,
    pub family_id: Option<&'a str>,
    pub access_jti: &'a str,
    pub access_exp: i64,
}

/// Why a code was not redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemRefused {
    /// No such code, expired, or bound to another client, redirect URI or verifier.
    Invalid,
    /// Already redeemed: what the first redemption issued, to revoke.
    Replayed(Box<AuthCode>),
}

#[derive(Debug, Clone)]
pub struct WebStore {
    client: Client,
    table: String,
}

impl WebStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String, op: &'static str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(op, e))?;
        Ok(out.item().cloned())
    }

    async fn delete(&self, pk: String, op: &'static str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(op, e))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }

    /// Store a new session; an existing id is never overwritten.
    pub async fn create_session(&self, session: &WebSession) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(session.to_item()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("web.session.create", e))?;
        Ok(())
    }

    /// The session with this id hash, if stored (expiry is the caller's check).
    pub async fn session(&self, id_hash: &str) -> Result<Option<WebSession>, StoreError> {
        self.get(format!("{SESSION}{id_hash}"), "web.session.get")
            .await?
            .as_ref()
            .map(WebSession::from_item)
            .transpose()
    }

    /// Record that the session was seen at `now` (only if it still exists).
    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("{SESSION}{id_hash}")))
            .update_expression("SET lastSeenAt = :now")
            .condition_expression("attribute_exists(pk) AND lastSeenAt < :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = StoreError::from_sdk("web.session.touch", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// End one session. `false` when there was none.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        self.delete(format!("{SESSION}{id_hash}"), "web.session.delete")
            .await
    }

    /// End every session of a user (sign out everywhere, disable, password change).
    /// Returns how many were ended.
    pub async fn end_user_sessions(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("byUser")
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user_id))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("web.session.by_user", e))?;
            for item in page.items() {
                if let Some(AttributeValue::S(pk)) = item.get("pk")
                    && pk.starts_with(SESSION)
                    && self.delete(pk.clone(), "web.session.delete").await?
                {
                    count += 1;
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(count)
    }

    /// Store a new authorization code.
    pub async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(code.to_item()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("web.code.put", e))?;
        Ok(())
    }

    /// Redeem a code: ONE conditional write that succeeds only for an unused, unexpired code
    /// of this client, redirect URI and PKCE challenge, and records what was issued. Exactly
    /// one of any number of concurrent redemptions wins. A refused redemption is read back
    /// (one more GetItem, on the failure path only) to tell a replay from a bad request.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        redemption: &Redemption<'_>,
        now: i64,
    ) -> Result<Result<AuthCode, RedeemRefused>, StoreError> {
        let pk = format!("{CODE}{code_hash}");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk.clone()))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(usedAt) AND expiresAt > :now \
                 AND clientId = :client AND redirectUri = :redirect AND codeChallenge = :challenge",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":client", s(redemption.client_id))
            .expression_attribute_values(":redirect", s(redemption.redirect_uri))
            .expression_attribute_values(":challenge", s(redemption.challenge))
            .expression_attribute_values(":jti", s(redemption.access_jti))
            .expression_attribute_values(":exp", n(redemption.access_exp))
            .return_values(ReturnValue::AllNew);
        request = match redemption.family_id {
            Some(family) => request
                .update_expression(
                    "SET usedAt = :now, accessJti = :jti, accessExp = :exp, familyId = :fam",
                )
                .expression_attribute_values(":fam", s(family)),
            None => {
                request.update_expression("SET usedAt = :now, accessJti = :jti, accessExp = :exp")
            }
        };
        match request.send().await {
            Ok(out) => {
                let attrs = out.attributes().cloned().unwrap_or_default();
                Ok(Ok(AuthCode::from_item(&attrs)?))
            }
            Err(e) => {
                let err = StoreError::from_sdk("web.code.redeem", e);
                if err.kind != StoreErrorKind::ConditionFailed {
                    return Err(err);
                }
                let Some(item) = self.get(pk, "web.code.get").await? else {
                    return Ok(Err(RedeemRefused::Invalid));
                };
                let code = AuthCode::from_item(&item)?;
                // A replay by the client the code was issued to; anyone else learns nothing.
                if code.used_at.is_some() && code.client_id == redemption.client_id {
                    Ok(Err(RedeemRefused::Replayed(Box::new(code))))
                } else {
                    Ok(Err(RedeemRefused::Invalid))
                }
            }
        }
    }

    /// The scopes `user_id` consented to for `client_id` (empty: none).
    pub async fn consent(&self, user_id: &str, client_id: &str) -> Result<Vec<String>, StoreError> {
        let Some(item) = self
            .get(format!("{CONSENT}{user_id}#{client_id}"), "web.consent.get")
            .await?
        else {
            return Ok(Vec::new());
        };
        Ok(match item.get("scopes") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .filter_map(|v| match v {
                    AttributeValue::S(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Remember that `user_id` consented to `scopes` (the whole set now consented to) for
    /// `client_id`.
    pub async fn put_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("{CONSENT}{user_id}#{client_id}")))
            .item("userId", s(user_id))
            .item("clientId", s(client_id))
            .item("scopes", AttributeValue::L(scopes.iter().map(s).collect()))
            .item("grantedAt", n(now))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("web.consent.put", e))?;
        Ok(())
    }

    /// Withdraw a consent. `false` when there was none.
    pub async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        self.delete(
            format!("{CONSENT}{user_id}#{client_id}"),
            "web.consent.delete",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> WebSession {
        WebSession {
            id_hash: "h".into(),
            user_id: "usr_1".into(),
            email: "a@example.com".into(),
            role: "user".into(),
            created_at: 1000,
            last_seen_at: 1000,
            expires_at: 1000 + 3600,
            mfa: false,
        }
    }

    #[test]
    fn sessions_end_at_the_idle_and_the_absolute_timeout() {
        let s = session();
        assert!(s.is_live(1000, 600));
        assert!(s.is_live(1599, 600));
        assert!(!s.is_live(1600, 600), "idle");
        let mut seen = s.clone();
        seen.last_seen_at = 4500;
        assert!(seen.is_live(4599, 600));
        assert!(!seen.is_live(4600, 600), "absolute");
        assert!(!s.needs_touch(1059));
        assert!(s.needs_touch(1060));
    }

    #[test]
    fn items_round_trip() {
        let s = session();
        let mut item = s.to_item();
        assert_eq!(WebSession::from_item(&item).unwrap(), s);
        item.remove("userId");
        assert!(WebSession::from_item(&item).is_err());
        let code = AuthCode {
            code_hash: "c".into(),
            client_id: "cl_1".into(),
            redirect_uri: "https://app.example/cb".into(),
            code_challenge: "x".repeat(43),
            user_id: "usr_1".into(),
            email: "a@example.com".into(),
            scope: "openid".into(),
            nonce: Some("n".into()),
            auth_time: 1000,
            expires_at: 1060,
            used_at: None,
            family_id: None,
            access_jti: None,
            access_exp: None,
        };
        assert_eq!(AuthCode::from_item(&code.to_item()).unwrap(), code);
    }
}
