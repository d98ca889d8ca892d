//! OAuth 2.0 clients, their secrets stored ONLY as SHA-256.
//! Table: hash key `clientId` (S).
//!
//! A client id reads `cl_<22 alphanumerics>` (not secret); a secret reads `cs_<43 base64url>`
//! (256 random bits). The secret is hashed with SHA-256, not argon2id: it is a random
//! 256-bit value, not a human choice, so a fast hash leaves nothing to brute-force, and the
//! token endpoint — the busiest unauthenticated endpoint — stays one digest away from an
//! answer instead of 19 MiB and ~30 ms of argon2 per request (a denial-of-service lever).
//! Comparison is constant-time. A rotated-out secret keeps working until
//! `previousSecretExpiresAt` (the overlap), then never again.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use super::{Item, get_bool, get_n, get_opt_n, get_opt_s, get_s, n, s};
use crate::error::{StoreError, StoreErrorKind};

pub const CLIENT_ID_PREFIX: &str = "cl_";
pub const CLIENT_SECRET_PREFIX: &str = "cs_";

/// The grants a client may use.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
/// Every grant this server implements (no implicit, no password grant: RFC 9700 §2.1.2, §2.4).
pub const SUPPORTED_GRANTS: &[&str] = &[
    GRANT_CLIENT_CREDENTIALS,
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
];
/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 of the current secret (`crate::ids::digest`).
    pub secret_hash: String,
    /// SHA-256 of the secret it replaced, valid until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    /// Lifetime of the access tokens it gets, in seconds.
    pub token_ttl: i64,
    pub disabled: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Where authorization responses may go: compared exactly, character for character.
    pub redirect_uris: Vec<String>,
    /// A public client (RFC 6749 §2.1: a browser or native app) has no secret; it may only
    /// use the authorization code grant (with PKCE, as every client) and refresh tokens.
    pub public: bool,
}

fn strings(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|v| match v {
                AttributeValue::S(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(s).collect())
}

impl ClientRecord {
    fn to_item(&self) -> Item {
        Item::from([
            ("clientId".into(), s(&self.id)),
            ("name".into(), s(&self.name)),
            ("secretHash".into(), s(&self.secret_hash)),
            ("grants".into(), string_list(&self.grants)),
            ("scopes".into(), string_list(&self.scopes)),
            ("tokenTtl".into(), n(self.token_ttl)),
            ("disabled".into(), AttributeValue::Bool(self.disabled)),
            ("createdAt".into(), n(self.created_at)),
            ("redirectUris".into(), string_list(&self.redirect_uris)),
            ("public".into(), AttributeValue::Bool(self.public)),
        ])
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        const OP: &str = "clients.read";
        Ok(Self {
            id: get_s(item, "clientId", OP)?,
            name: get_s(item, "name", OP)?,
            secret_hash: get_s(item, "secretHash", OP)?,
            previous_secret_hash: get_opt_s(item, "previousSecretHash"),
            previous_secret_expires_at: get_opt_n(item, "previousSecretExpiresAt"),
            grants: strings(item, "grants"),
            scopes: strings(item, "scopes"),
            token_ttl: get_n(item, "tokenTtl", OP)?,
            disabled: get_bool(item, "disabled"),
            created_at: get_n(item, "createdAt", OP)?,
            last_used_at: get_opt_n(item, "lastUsedAt"),
            redirect_uris: strings(item, "redirectUris"),
            public: get_bool(item, "public"),
        })
    }

    /// Whether `uri` is one of the registered redirect URIs, exactly (RFC 9700 §4.1.3: no
    /// prefix, pattern or normalised matching).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether `secret` is this client's current secret, or its previous one while the
    /// overlap lasts. Both digests are compared in constant time, always.
    pub fn secret_matches(&self, secret: &str, now: i64) -> bool {
        if self.public {
            return false;
        }
        let digest = crate::ids::digest(secret);
        let current = digest.as_bytes().ct_eq(self.secret_hash.as_bytes());
        let previous = match (&self.previous_secret_hash, self.previous_secret_expires_at) {
            (Some(hash), Some(until)) if now < until => digest.as_bytes().ct_eq(hash.as_bytes()),
            _ => subtle::Choice::from(0),
        };
        bool::from(current | previous)
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grants.iter().any(|g| g == grant)
    }
}

/// A freshly made client or secret: the secret in clear (shown once; none for a public
/// client) and the record.
pub struct NewClient {
    pub secret: Option<String>,
    pub record: ClientRecord,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewClient(id={}, secret=<redacted>)", self.record.id)
    }
}

/// A new random secret: `cs_` + 256 random bits, base64url.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{CLIENT_SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Make a new confidential client (not stored yet).
pub fn generate(
    name: &str,
    grants: Vec<String>,
    scopes: Vec<String>,
    token_ttl: i64,
    now: i64,
) -> NewClient {
    generate_with(name, grants, scopes, token_ttl, Vec::new(), false, now)
}

/// Make a new client with redirect URIs; `public`: no secret.
pub fn generate_with(
    name: &str,
    grants: Vec<String>,
    scopes: Vec<String>,
    token_ttl: i64,
    redirect_uris: Vec<String>,
    public: bool,
    now: i64,
) -> NewClient {
    let secret = (!public).then(new_secret);
    NewClient {
        record: ClientRecord {
            id: format!("{CLIENT_ID_PREFIX}{}", crate::ids::alphanumeric(22)),
            name: name.to_owned(),
            secret_hash: secret
                .as_deref()
                .map(crate::ids::digest)
                .unwrap_or_default(),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            grants,
            scopes,
            token_ttl,
            disabled: false,
            created_at: now,
            last_used_at: None,
            redirect_uris,
            public,
        },
        secret,
    }
}

/// Check a redirect URI for registration (RFC 9700 §2.1, RFC 8252 §7.3): absolute, `https`
/// (or `http` on a loopback address, for native apps and local development), no fragment,
/// no user info, printable ASCII. Returns why not.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > 512 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be at most 512 printable ASCII characters");
    }
    if uri.contains('#') {
        return Err("must not have a fragment");
    }
    let rest = if let Some(rest) = uri.strip_prefix("https://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
            return Err("must use https (http only on a loopback address)");
        }
        rest
    } else {
        return Err("must be an absolute https URI");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host, without user information");
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct ClientStore {
    client: Client,
    table: String,
}

impl ClientStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Store a new client; an existing id is never overwritten.
    pub async fn create(&self, record: &ClientRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .condition_expression("attribute_not_exists(clientId)")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("clients.create", e))?;
        Ok(())
    }

    /// One strongly consistent GetItem (a disabled client or a rotated secret is seen at once).
    pub async fn get(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("clientId", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("clients.get", e))?;
        out.item().map(ClientRecord::from_item).transpose()
    }

    /// Every client (the admin CLI; a table of clients is small).
    pub async fn list(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let mut out = super::scan_all(
            &self.client,
            &self.table,
            "clients.list",
            ClientRecord::from_item,
        )
        .await?;
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Put a new secret in force. The old one keeps working for `overlap` seconds (0: not at
    /// all). Returns the new secret, or `None` when there is no such client.
    pub async fn rotate_secret(
        &self,
        id: &str,
        overlap: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some(current) = self.get(id).await? else {
            return Ok(None);
        };
        let secret = new_secret();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("clientId", s(id))
            .update_expression(
                "SET secretHash = :new, previousSecretHash = :old, previousSecretExpiresAt = :until",
            )
            // Only if nobody rotated in between: the overlap is for the secret we read.
            .condition_expression("secretHash = :old")
            .expression_attribute_values(":new", s(crate::ids::digest(&secret)))
            .expression_attribute_values(":old", s(&current.secret_hash))
            .expression_attribute_values(":until", n(now + overlap.max(0)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(secret)),
            Err(e) => {
                let err = StoreError::from_sdk("clients.rotate_secret", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Err(StoreError::new(
                        StoreErrorKind::ConditionFailed,
                        "clients.rotate_secret",
                        "the secret was rotated concurrently; try again",
                    ))
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Disable a client: its secret stops working at once. Returns the record as it was
    /// (`None` when there is no such client).
    pub async fn disable(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("clientId", s(id))
            .update_expression("SET disabled = :yes")
            .condition_expression("attribute_exists(clientId)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes().map(ClientRecord::from_item).transpose(),
            Err(e) => {
                let err = StoreError::from_sdk("clients.disable", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Record a use, at most once per `interval` seconds per client (one conditional write;
    /// concurrent uses in one interval let exactly one through).
    pub async fn touch(&self, id: &str, now: i64, interval: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("clientId", s(id))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression(
                "attribute_exists(clientId) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt <= :before)",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":before", n(now - interval))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = StoreError::from_sdk("clients.touch", e);
                if err.kind == StoreErrorKind::ConditionFailed {
                    Ok(())
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

    const NOW: i64 = 1_800_000_000;

    fn client() -> NewClient {
        generate(
            "partner",
            vec![GRANT_CLIENT_CREDENTIALS.into()],
            vec!["orders:read".into()],
            900,
            NOW,
        )
    }

    #[test]
    fn ids_and_secrets_have_their_shapes() {
        let c = client();
        let secret = c.secret.clone().unwrap();
        assert!(c.record.id.starts_with(CLIENT_ID_PREFIX));
        assert_eq!(c.record.id.len(), 3 + 22);
        assert!(
            c.record.id[3..]
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric())
        );
        assert!(secret.starts_with(CLIENT_SECRET_PREFIX));
        assert_eq!(secret.len(), 3 + 43);
        assert_ne!(c.secret, client().secret);
        assert_eq!(c.record.secret_hash, crate::ids::digest(&secret));
        assert!(!format!("{c:?}").contains(&secret));
    }

    #[test]
    fn only_the_current_secret_and_the_previous_within_its_overlap_match() {
        let c = client();
        let secret = c.secret.clone().unwrap();
        let mut record = c.record.clone();
        assert!(record.secret_matches(&secret, NOW));
        assert!(!record.secret_matches("cs_wrong", NOW));
        assert!(!record.secret_matches("", NOW));
        let next = new_secret();
        record.previous_secret_hash = Some(record.secret_hash.clone());
        record.previous_secret_expires_at = Some(NOW + 60);
        record.secret_hash = crate::ids::digest(&next);
        assert!(record.secret_matches(&next, NOW + 61));
        assert!(record.secret_matches(&secret, NOW + 59));
        assert!(!record.secret_matches(&secret, NOW + 60));
    }

    #[test]
    fn public_clients_have_no_secret_and_match_none() {
        let c = generate_with(
            "spa",
            vec![GRANT_AUTHORIZATION_CODE.into()],
            vec![],
            900,
            vec!["https://app.example/cb".into()],
            true,
            NOW,
        );
        assert!(c.secret.is_none());
        assert!(c.record.secret_hash.is_empty());
        assert!(!c.record.secret_matches("", NOW));
        assert!(!c.record.secret_matches(&crate::ids::digest(""), NOW));
        assert!(c.record.has_redirect_uri("https://app.example/cb"));
        for near in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://APP.example/cb",
            "https://app.example/c",
        ] {
            assert!(!c.record.has_redirect_uri(near), "{near}");
        }
    }

    #[test]
    fn redirect_uris_are_checked_at_registration() {
        for good in [
            "https://app.example/cb",
            "https://app.example:8443/cb?tenant=1",
            "http://127.0.0.1:8080/callback",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://user@app.example/cb",
            "https:///cb",
            "javascript:alert(1)",
            "/relative",
            "https://app.example/a b",
            "http://127.0.0.1.evil.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn items_round_trip() {
        let c = client();
        let back = ClientRecord::from_item(&c.record.to_item()).unwrap();
        assert_eq!(back, c.record);
    }
}
