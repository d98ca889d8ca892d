//! Access and refresh tokens: signed JWTs with a type claim that keeps them from standing in
//! for each other. The clock is always an argument.

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

use crate::ids;
use crate::keys::KeyRing;

/// Longest token we look at (bytes); longer input is refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Access,
    Refresh,
    /// An OAuth 2.0 access token (RFC 9068 profile: header `typ: at+jwt`, `client_id`,
    /// `scope`), issued by the token endpoint.
    #[serde(rename = "oauth")]
    OAuth,
    /// The challenge between a login's password step and its second factor.
    Mfa,
}

/// The JOSE `typ` of OAuth access tokens (RFC 9068 §2.1). No other Portcullis token has it.
pub const AT_JWT: &str = "at+jwt";

/// Whether a token's header says `typ: at+jwt` (RFC 9068), without verifying anything: the
/// authorizer uses it to pick which kind of token to verify the token as.
pub fn is_oauth_token(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES
        && jsonwebtoken::decode_header(token)
            .is_ok_and(|h| h.typ.is_some_and(|t| t.eq_ignore_ascii_case(AT_JWT)))
}

/// The claims of every Portcullis token. Unknown claims are ignored; duplicate claims make
/// the token invalid (serde refuses duplicate fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub token_use: TokenUse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The login family a refresh token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// OAuth access tokens: the client the token was issued to (RFC 9068 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth access tokens: the granted scopes, space-separated (RFC 9068 §2.2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// OAuth tokens issued for a user: when the user signed in (RFC 9068 §2.2.1, OIDC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user authenticated (RFC 8176: `pwd`, `otp`, `mfa`); user tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The assurance level reached: `aal1` (password) or `aal2` (password + second factor),
    /// after NIST SP 800-63B.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

/// How a user proved who they are, carried by their tokens (`amr`, `acr`) through refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Password only.
    #[default]
    Password,
    /// Password and a TOTP code.
    PasswordOtp,
    /// Password and a recovery code (the second factor, without the device).
    PasswordRecovery,
}

impl Auth {
    pub fn amr(self) -> Vec<String> {
        let v: &[&str] = match self {
            Self::Password => &["pwd"],
            Self::PasswordOtp => &["pwd", "otp", "mfa"],
            Self::PasswordRecovery => &["pwd", "mfa"],
        };
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    pub fn acr(self) -> &'static str {
        match self {
            Self::Password => "aal1",
            Self::PasswordOtp | Self::PasswordRecovery => "aal2",
        }
    }

    /// Whether a second factor was used.
    pub fn is_mfa(self) -> bool {
        self != Self::Password
    }

    /// Read back from a token's `amr` (absent: password only).
    pub fn from_amr(amr: Option<&[String]>) -> Self {
        let has = |x: &str| amr.is_some_and(|a| a.iter().any(|v| v == x));
        match (has("mfa"), has("otp")) {
            (true, true) => Self::PasswordOtp,
            (true, false) => Self::PasswordRecovery,
            _ => Self::Password,
        }
    }
}

/// The claims of an OpenID Connect ID token (OIDC Core §2). Its `aud` is the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub at_hash: String,
    pub azp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Why a token was refused. Callers map it to the error code of their endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
    /// Signed with a `kid` this ring does not hold (perhaps a key newer than our copy).
    UnknownKey,
}

/// A signed token and the claims it carries. `Debug` shows the claims, never the token.
#[derive(Clone)]
pub struct Issued {
    pub token: String,
    pub claims: Claims,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("claims", &self.claims)
            .finish()
    }
}

/// What a user granted a client: the subject of delegated OAuth tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserGrant<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub auth_time: i64,
}

/// Signs and verifies tokens with the key ring, for one issuer and audience.
#[derive(Debug, Clone)]
pub struct TokenService {
    /// Swapped whole when the secret is re-read (rotation), never edited in place.
    ring: Arc<RwLock<Arc<KeyRing>>>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    /// Clock skew tolerated on exp/nbf/iat, in seconds. Small on purpose (default 5 s): the
    /// `jsonwebtoken` default of 60 s would keep a token alive a minute past its expiry.
    pub leeway: i64,
}

impl TokenService {
    pub fn new(
        ring: Arc<KeyRing>,
        issuer: String,
        audience: String,
        access_ttl: i64,
        refresh_ttl: i64,
        leeway: i64,
    ) -> Self {
        Self {
            ring: Arc::new(RwLock::new(ring)),
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            leeway,
        }
    }

    /// The `aud` of a token type: access tokens carry `JWT_AUDIENCE`; refresh tokens carry
    /// `JWT_AUDIENCE#refresh`, so no verifier that checks the audience — API Gateway's JWT
    /// authorizer, a downstream service — can mistake one for an access token.
    pub fn audience_for(&self, token_use: TokenUse) -> String {
        match token_use {
            TokenUse::Access | TokenUse::OAuth => self.audience.clone(),
            TokenUse::Refresh => format!("{}#refresh", self.audience),
            TokenUse::Mfa => format!("{}#mfa", self.audience),
        }
    }

    /// The key ring in force.
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put a newly read ring in force (every clone of this service sees it).
    pub fn replace_ring(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.ring.write() {
            Ok(mut guard) => *guard = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }

    /// The claims every token has (issuer, audience of its kind, subject, times, id, kind);
    /// each issuing function sets the rest.
    fn claims(&self, token_use: TokenUse, sub: &str, ttl: i64, jti: String, now: i64) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience_for(token_use),
            sub: sub.to_owned(),
            exp: now + ttl,
            iat: now,
            nbf: None,
            jti,
            token_use,
            email: None,
            role: None,
            fam: None,
            client_id: None,
            scope: None,
            auth_time: None,
            amr: None,
            acr: None,
        }
    }

    fn sign(&self, claims: Claims) -> Result<Issued, crate::Error> {
        let ring = self.ring();
        let key = ring.signer();
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        if claims.token_use == TokenUse::OAuth {
            header.typ = Some(AT_JWT.to_owned());
        }
        let token = jsonwebtoken::encode(&header, &claims, key.encoding())
            .map_err(|e| crate::Error::internal(format!("signing failed: {e}")))?;
        Ok(Issued { token, claims })
    }

    pub fn issue_access(
        &self,
        user_id: &str,
        email: &str,
        role: &str,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.issue_access_as(user_id, email, role, Auth::Password, now)
    }

    /// An access token that says how the user authenticated (`amr`, `acr`).
    pub fn issue_access_as(
        &self,
        user_id: &str,
        email: &str,
        role: &str,
        auth: Auth,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.sign(Claims {
            email: Some(email.to_owned()),
            role: Some(role.to_owned()),
            amr: Some(auth.amr()),
            acr: Some(auth.acr().to_owned()),
            ..self.claims(
                TokenUse::Access,
                user_id,
                self.access_ttl,
                ids::new_id("at"),
                now,
            )
        })
    }

    /// An OAuth access token (RFC 9068) for `subject` (the client itself in the client
    /// credentials grant), issued to `client_id` with `scope`, valid for `ttl` seconds.
    pub fn issue_oauth(
        &self,
        subject: &str,
        client_id: &str,
        scope: &str,
        ttl: i64,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.sign(Claims {
            client_id: Some(client_id.to_owned()),
            scope: Some(scope.to_owned()),
            ..self.claims(TokenUse::OAuth, subject, ttl, ids::new_id("oat"), now)
        })
    }

    /// An OAuth access token (RFC 9068) issued to `client_id` to act for a user: `sub` is the
    /// user, `auth_time` when they signed in.
    /// `jti` is chosen by the caller (the code redemption records it before signing).
    pub fn issue_delegated(
        &self,
        grant: &UserGrant<'_>,
        jti: String,
        ttl: i64,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.sign(Claims {
            email: Some(grant.email.to_owned()),
            client_id: Some(grant.client_id.to_owned()),
            scope: Some(grant.scope.to_owned()),
            auth_time: Some(grant.auth_time),
            ..self.claims(TokenUse::OAuth, grant.user_id, ttl, jti, now)
        })
    }

    /// A refresh token of an OAuth client for a user, in `family`: like a first-party refresh
    /// token, plus the client, scope and sign-in time it carries on.
    pub fn issue_oauth_refresh(
        &self,
        grant: &UserGrant<'_>,
        family: &str,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.sign(Claims {
            email: Some(grant.email.to_owned()),
            fam: Some(family.to_owned()),
            client_id: Some(grant.client_id.to_owned()),
            scope: Some(grant.scope.to_owned()),
            auth_time: Some(grant.auth_time),
            ..self.claims(
                TokenUse::Refresh,
                grant.user_id,
                self.refresh_ttl,
                ids::new_id("rt"),
                now,
            )
        })
    }

    /// An OpenID Connect ID token for `grant`, beside `access_token` (whose `at_hash` it
    /// carries: the left half of its digest by the signing algorithm's hash, OIDC Core
    /// §3.1.3.6; SHA-512 for Ed25519, as the OpenID errata and panva's libraries do).
    pub fn issue_id_token(
        &self,
        grant: &UserGrant<'_>,
        nonce: Option<&str>,
        access_token: &str,
        with_email: bool,
        now: i64,
    ) -> Result<String, crate::Error> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let ring = self.ring();
        let key = ring.signer();
        let digest: Vec<u8> = match key.alg {
            jsonwebtoken::Algorithm::EdDSA => sha2::Sha512::digest(access_token).to_vec(),
            _ => sha2::Sha256::digest(access_token).to_vec(),
        };
        let claims = IdClaims {
            iss: self.issuer.clone(),
            sub: grant.user_id.to_owned(),
            aud: grant.client_id.to_owned(),
            exp: now + self.access_ttl,
            iat: now,
            auth_time: grant.auth_time,
            nonce: nonce.map(str::to_owned),
            at_hash: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(&digest[..digest.len() / 2]),
            azp: grant.client_id.to_owned(),
            email: with_email.then(|| grant.email.to_owned()),
        };
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, key.encoding())
            .map_err(|e| crate::Error::internal(format!("signing failed: {e}")))
    }

    pub fn issue_refresh(
        &self,
        user_id: &str,
        email: &str,
        family: &str,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.issue_refresh_as(user_id, email, family, Auth::Password, now)
    }

    /// A refresh token that carries how the user authenticated to the tokens it buys.
    pub fn issue_refresh_as(
        &self,
        user_id: &str,
        email: &str,
        family: &str,
        auth: Auth,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.sign(Claims {
            email: Some(email.to_owned()),
            fam: Some(family.to_owned()),
            amr: Some(auth.amr()),
            acr: Some(auth.acr().to_owned()),
            ..self.claims(
                TokenUse::Refresh,
                user_id,
                self.refresh_ttl,
                ids::new_id("rt"),
                now,
            )
        })
    }

    /// A login's second-step challenge (`MFA_REQUIRED`): short-lived, audience
    /// `JWT_AUDIENCE#mfa` so nothing takes it for another token; single use through the `jti`
    /// the user item records.
    pub fn issue_mfa_challenge(
        &self,
        user_id: &str,
        email: &str,
        ttl: i64,
        now: i64,
    ) -> Result<Issued, crate::Error> {
        self.sign(Claims {
            email: Some(email.to_owned()),
            amr: Some(Auth::Password.amr()),
            ..self.claims(TokenUse::Mfa, user_id, ttl, ids::new_id("mfa"), now)
        })
    }

    /// Verify signature (with the key its `kid` names, pinned to that key's algorithm),
    /// issuer, audience, type and times against `now`.
    pub fn verify(&self, token: &str, expected: TokenUse, now: i64) -> Result<Claims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        // We understand no critical extensions, and we never take keys from the token.
        if header.crit.is_some()
            || header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
        {
            return Err(TokenError::Invalid);
        }
        // `typ: at+jwt` is exactly the OAuth access tokens (RFC 9068 §4: verifiers MUST check
        // it), so neither kind can be presented as the other even before the claims are read.
        let at_jwt = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(AT_JWT));
        if at_jwt != (expected == TokenUse::OAuth) {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
        let ring = self.ring();
        let key = ring.find(kid).ok_or(TokenError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(TokenError::Invalid);
        }
        let mut validation = Validation::new(key.alg);
        // Times are checked below against the caller's clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.issuer]);
        let audience = self.audience_for(expected);
        validation.set_audience(&[&audience]);
        let data = jsonwebtoken::decode::<Claims>(token, key.decoding(), &validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.token_use != expected || claims.iss != self.issuer || claims.aud != audience {
            return Err(TokenError::Invalid);
        }
        if claims.sub.is_empty() || claims.jti.is_empty() {
            return Err(TokenError::Invalid);
        }
        if expected == TokenUse::OAuth && (claims.client_id.is_none() || claims.scope.is_none()) {
            return Err(TokenError::Invalid);
        }
        if claims.iat > now + self.leeway || claims.nbf.is_some_and(|nbf| nbf > now + self.leeway) {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now - self.leeway {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::Algorithm;

    const NOW: i64 = 1_800_000_000;

    fn service_with(ring: KeyRing) -> TokenService {
        TokenService::new(
            Arc::new(ring),
            "https://auth.example".into(),
            "api".into(),
            900,
            3600,
            5,
        )
    }

    fn service() -> TokenService {
        let set = serde_json::json!({"keys": [KeyRing::generate_jwk(Algorithm::HS256).unwrap()]});
        service_with(KeyRing::from_secret(&set.to_string()).unwrap())
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Re-sign arbitrary header/claims JSON with the service's signing key.
    fn forge(svc: &TokenService, header: serde_json::Value, claims: serde_json::Value) -> String {
        let ring = svc.ring();
        let key = ring.signer();
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding(), key.alg).unwrap();
        format!("{message}.{sig}")
    }

    fn good_claims(svc: &TokenService) -> serde_json::Value {
        serde_json::to_value(
            svc.issue_access("usr_1", "a@example.com", "user", NOW)
                .unwrap()
                .claims,
        )
        .unwrap()
    }

    fn header(svc: &TokenService) -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": svc.ring().signer().kid})
    }

    #[test]
    fn id_tokens_are_for_the_client_with_nonce_auth_time_and_at_hash() {
        use sha2::Digest as _;
        for (alg, hash_len) in [(Algorithm::EdDSA, 64), (Algorithm::HS256, 32)] {
            let set = serde_json::json!({"keys": [KeyRing::generate_jwk(alg).unwrap()]});
            let svc = service_with(KeyRing::from_secret(&set.to_string()).unwrap());
            let grant = UserGrant {
                user_id: "usr_1",
                email: "a@example.com",
                client_id: "cl_1",
                scope: "openid email",
                auth_time: NOW - 100,
            };
            let access = svc
                .issue_delegated(&grant, "oat_x".into(), 600, NOW)
                .unwrap();
            assert_eq!(access.claims.sub, "usr_1");
            assert_eq!(access.claims.client_id.as_deref(), Some("cl_1"));
            assert_eq!(access.claims.auth_time, Some(NOW - 100));
            assert_eq!(
                svc.verify(&access.token, TokenUse::OAuth, NOW).unwrap().jti,
                "oat_x"
            );
            let id = svc
                .issue_id_token(&grant, Some("n-1"), &access.token, true, NOW)
                .unwrap();
            // Not an access token of any kind.
            for kind in [TokenUse::Access, TokenUse::OAuth, TokenUse::Refresh] {
                assert!(svc.verify(&id, kind, NOW).is_err(), "{kind:?}");
            }
            let payload = id.split('.').nth(1).unwrap();
            let claims: IdClaims = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!((claims.aud.as_str(), claims.azp.as_str()), ("cl_1", "cl_1"));
            assert_eq!(claims.nonce.as_deref(), Some("n-1"));
            assert_eq!(claims.auth_time, NOW - 100);
            assert_eq!(claims.email.as_deref(), Some("a@example.com"));
            let full: Vec<u8> = if hash_len == 64 {
                sha2::Sha512::digest(&access.token).to_vec()
            } else {
                sha2::Sha256::digest(&access.token).to_vec()
            };
            assert_eq!(claims.at_hash, b64(&full[..hash_len / 2]));
        }
    }

    #[test]
    fn access_round_trip_carries_every_claim() {
        let svc = service();
        let issued = svc
            .issue_access("usr_1", "a@example.com", "admin", NOW)
            .unwrap();
        let claims = svc
            .verify(&issued.token, TokenUse::Access, NOW + 10)
            .unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!((claims.iat, claims.exp), (NOW, NOW + 900));
        assert_eq!(claims.role.as_deref(), Some("admin"));
        assert!(claims.jti.starts_with("at_"));
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            Some(svc.ring().signer().kid.as_str())
        );
    }

    #[test]
    fn issued_debug_never_prints_the_token() {
        let issued = service()
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap();
        let printed = format!("{issued:?}");
        assert!(!printed.contains(&issued.token));
        assert!(!printed.contains(issued.token.split('.').nth(2).unwrap()));
        assert!(printed.contains("usr_1"));
    }

    #[test]
    fn oauth_tokens_are_at_jwt_and_never_stand_in_for_user_tokens() {
        let svc = service();
        let issued = svc
            .issue_oauth("cl_1", "cl_1", "orders:read", 600, NOW)
            .unwrap();
        let jose = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(jose.typ.as_deref(), Some(AT_JWT));
        assert!(is_oauth_token(&issued.token));
        let claims = svc.verify(&issued.token, TokenUse::OAuth, NOW + 1).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.client_id.as_deref(), Some("cl_1"));
        assert_eq!(claims.scope.as_deref(), Some("orders:read"));
        assert_eq!((claims.aud.as_str(), claims.exp), ("api", NOW + 600));
        assert!(claims.jti.starts_with("oat_"));
        assert_eq!(
            svc.verify(&issued.token, TokenUse::Access, NOW + 1),
            Err(TokenError::Invalid)
        );
        let access = svc
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap()
            .token;
        assert!(!is_oauth_token(&access));
        assert_eq!(
            svc.verify(&access, TokenUse::OAuth, NOW + 1),
            Err(TokenError::Invalid)
        );
        // a user token re-signed with typ at+jwt is still not an OAuth token (no client_id),
        // and an OAuth token's claims under a plain typ are not one either
        let user_claims = serde_json::to_value(
            svc.issue_access("usr_1", "a@example.com", "user", NOW)
                .unwrap()
                .claims,
        )
        .unwrap();
        let mut at_header = header(&svc);
        at_header["typ"] = "at+jwt".into();
        let forged = forge(&svc, at_header, user_claims);
        assert_eq!(
            svc.verify(&forged, TokenUse::OAuth, NOW + 1),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            svc.verify(&forged, TokenUse::Access, NOW + 1),
            Err(TokenError::Invalid)
        );
        let oauth_claims = serde_json::to_value(&issued.claims).unwrap();
        let plain = forge(&svc, header(&svc), oauth_claims);
        assert_eq!(
            svc.verify(&plain, TokenUse::OAuth, NOW + 1),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            svc.verify(&issued.token, TokenUse::OAuth, NOW + 600 + 5),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn types_never_stand_in_for_each_other() {
        let svc = service();
        let access = svc
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap()
            .token;
        let refresh = svc
            .issue_refresh("usr_1", "a@example.com", "fam_1", NOW)
            .unwrap()
            .token;
        assert_eq!(
            svc.verify(&access, TokenUse::Refresh, NOW),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            svc.verify(&refresh, TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            svc.verify(&refresh, TokenUse::Refresh, NOW)
                .unwrap()
                .fam
                .as_deref(),
            Some("fam_1")
        );
    }

    #[test]
    fn expiry_uses_the_given_clock_and_small_leeway() {
        let svc = service();
        let token = svc
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap()
            .token;
        assert!(svc.verify(&token, TokenUse::Access, NOW + 900).is_ok()); // within leeway
        assert!(svc.verify(&token, TokenUse::Access, NOW + 904).is_ok());
        assert_eq!(
            svc.verify(&token, TokenUse::Access, NOW + 905),
            Err(TokenError::Expired)
        );
        assert_eq!(
            svc.verify(&token, TokenUse::Access, NOW + 100_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn not_yet_valid_and_future_iat_are_refused() {
        let svc = service();
        let mut claims = good_claims(&svc);
        claims["nbf"] = serde_json::json!(NOW + 60);
        assert_eq!(
            svc.verify(&forge(&svc, header(&svc), claims), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        let mut claims = good_claims(&svc);
        claims["iat"] = serde_json::json!(NOW + 60);
        assert_eq!(
            svc.verify(&forge(&svc, header(&svc), claims), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        let mut claims = good_claims(&svc);
        claims["iat"] = serde_json::json!(NOW + 3);
        assert!(
            svc.verify(&forge(&svc, header(&svc), claims), TokenUse::Access, NOW)
                .is_ok()
        );
    }

    #[test]
    fn wrong_issuer_audience_or_missing_claims_are_refused() {
        let svc = service();
        for (name, value) in [
            ("iss", serde_json::json!("https://evil.example")),
            ("aud", serde_json::json!("other-api")),
            ("aud", serde_json::json!(["other-api", "x"])),
            ("token_use", serde_json::json!("id")),
            ("sub", serde_json::json!("")),
            ("exp", serde_json::json!("tomorrow")),
        ] {
            let mut claims = good_claims(&svc);
            claims[name] = value;
            assert_eq!(
                svc.verify(&forge(&svc, header(&svc), claims), TokenUse::Access, NOW),
                Err(TokenError::Invalid),
                "{name}"
            );
        }
        for name in ["exp", "iss", "aud", "sub", "jti", "token_use"] {
            let mut claims = good_claims(&svc);
            claims.as_object_mut().unwrap().remove(name);
            assert_eq!(
                svc.verify(&forge(&svc, header(&svc), claims), TokenUse::Access, NOW),
                Err(TokenError::Invalid),
                "{name}"
            );
        }
    }

    #[test]
    fn tampered_unknown_kid_none_and_crit_are_refused() {
        let svc = service();
        let token = svc
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap()
            .token;
        let parts: Vec<&str> = token.split('.').collect();
        // payload tampered: role escalated, old signature kept
        let mut claims = good_claims(&svc);
        claims["role"] = serde_json::json!("admin");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(claims.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            svc.verify(&tampered, TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        // stripped signature
        assert_eq!(
            svc.verify(
                &format!("{}.{}.", parts[0], parts[1]),
                TokenUse::Access,
                NOW
            ),
            Err(TokenError::Invalid)
        );
        // unknown / missing kid
        let mut h = header(&svc);
        h["kid"] = serde_json::json!("unknown");
        assert_eq!(
            svc.verify(&forge(&svc, h, good_claims(&svc)), TokenUse::Access, NOW),
            Err(TokenError::UnknownKey)
        );
        let mut h = header(&svc);
        h.as_object_mut().unwrap().remove("kid");
        assert_eq!(
            svc.verify(&forge(&svc, h, good_claims(&svc)), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        // crit header
        let mut h = header(&svc);
        h["crit"] = serde_json::json!(["exp"]);
        assert_eq!(
            svc.verify(&forge(&svc, h, good_claims(&svc)), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        // alg none in several casings, unsigned
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = serde_json::json!({"alg": alg, "kid": svc.ring().signer().kid});
            let unsigned = format!(
                "{}.{}.",
                b64(h.to_string().as_bytes()),
                b64(good_claims(&svc).to_string().as_bytes())
            );
            assert_eq!(
                svc.verify(&unsigned, TokenUse::Access, NOW),
                Err(TokenError::Invalid),
                "{alg}"
            );
        }
        // header alg that differs from the key's pinned alg (signature made with HS384 semantics)
        let mut h = header(&svc);
        h["alg"] = serde_json::json!("HS384");
        assert_eq!(
            svc.verify(&forge(&svc, h, good_claims(&svc)), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
        // garbage and oversized input
        for junk in ["", "a", "a.b", "a.b.c", "....", "€.€.€"] {
            assert_eq!(
                svc.verify(junk, TokenUse::Access, NOW),
                Err(TokenError::Invalid),
                "{junk}"
            );
        }
        assert_eq!(
            svc.verify(&"a".repeat(MAX_TOKEN_BYTES + 1), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn duplicate_claims_are_refused() {
        let svc = service();
        let claims = good_claims(&svc).to_string();
        let duplicated = claims.replacen("{", r#"{"sub":"usr_admin","#, 1);
        let ring = svc.ring();
        let key = ring.signer();
        let message = format!(
            "{}.{}",
            b64(header(&svc).to_string().as_bytes()),
            b64(duplicated.as_bytes())
        );
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding(), key.alg).unwrap();
        assert_eq!(
            svc.verify(&format!("{message}.{sig}"), TokenUse::Access, NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_key_removed_from_the_ring_no_longer_verifies_and_an_old_key_still_does() {
        let old = KeyRing::generate_jwk(Algorithm::HS256).unwrap();
        let new = KeyRing::generate_jwk(Algorithm::EdDSA).unwrap();
        let before = service_with(
            KeyRing::from_secret(&serde_json::json!({"keys": [old.clone()]}).to_string()).unwrap(),
        );
        let token = before
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap()
            .token;
        let rotated = service_with(
            KeyRing::from_secret(&serde_json::json!({"keys": [new.clone(), old]}).to_string())
                .unwrap(),
        );
        assert!(rotated.verify(&token, TokenUse::Access, NOW).is_ok());
        let fresh = rotated
            .issue_access("usr_1", "a@example.com", "user", NOW)
            .unwrap()
            .token;
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().alg,
            Algorithm::EdDSA
        );
        assert!(rotated.verify(&fresh, TokenUse::Access, NOW).is_ok());
        let retired = service_with(
            KeyRing::from_secret(&serde_json::json!({"keys": [new]}).to_string()).unwrap(),
        );
        assert_eq!(
            retired.verify(&token, TokenUse::Access, NOW),
            Err(TokenError::UnknownKey)
        );
    }
}
