//! Configuration from the environment, read and validated once per cold start.

use std::fmt;

pub use crate::password::HashProfile;
use crate::password::PasswordRules;
use crate::rules::RouteRule;

/// Every variable the functions read (the template, `scripts/local.env` and the README list
/// the same names; `scripts/check_consistency.py` proves it).
pub const ENV_VARS: &[&str] = &[
    "USERS_TABLE",
    "REFRESH_TOKENS_TABLE",
    "API_KEYS_TABLE",
    "RATE_LIMITS_TABLE",
    "REVOKED_TOKENS_TABLE",
    "OAUTH_CLIENTS_TABLE",
    "WEB_SESSIONS_TABLE",
    "SIGNING_KEYS_SECRET_ID",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "ACCESS_TOKEN_TTL_SECONDS",
    "REFRESH_TOKEN_TTL_SECONDS",
    "LOGIN_RATE_LIMIT",
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_SECONDS",
    "REFRESH_COOKIE",
];

/// Knobs with safe defaults that deployments rarely touch (documented in the README).
pub const OPTIONAL_ENV_VARS: &[&str] = &[
    "PASSWORD_HASH_PROFILE",
    "JWT_LEEWAY_SECONDS",
    "PASSWORD_POLICY",
    "REFRESH_REUSE_GRACE_SECONDS",
    "REFRESH_COOKIE_PATH",
    "AUTHORIZER_RESPONSE",
    "AUTHORIZER_ROUTE_RULES",
    "REVOCATION_REFRESH_SECONDS",
    "API_KEY_CACHE_SECONDS",
    "VALIDATE_KEY_CACHE_SECONDS",
    "API_KEY_LAST_USED_INTERVAL_SECONDS",
    "SIGNING_KEYS_REFRESH_SECONDS",
    "JWKS_URI",
    "OAUTH_ENDPOINT_BASE",
    "OAUTH_SCOPES_SUPPORTED",
    "OAUTH_TOKEN_RATE_LIMIT",
    "OAUTH_TOKEN_IP_RATE_LIMIT",
    "WEB_BASE_URL",
    "SESSION_IDLE_SECONDS",
    "SESSION_ABSOLUTE_SECONDS",
    "MFA_KEY_SECRET_ID",
    "MFA_ISSUER",
    "SELF_SIGNUP",
    "REQUIRE_VERIFIED_EMAIL",
    "MAIL_FROM",
    "MAIL_PRODUCT_NAME",
    "VERIFY_EMAIL_URL",
    "PASSWORD_RESET_URL",
    "ACCOUNT_RATE_LIMIT",
    "ACCOUNT_EMAIL_RATE_LIMIT",
    "ACCOUNT_RESPONSE_FLOOR_MS",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub users: String,
    pub refresh_tokens: String,
    pub api_keys: String,
    pub rate_limits: String,
    pub revoked_tokens: String,
    pub oauth_clients: String,
    /// Browser sessions, authorization codes and consents (one table, prefixed keys).
    pub web_sessions: String,
}

impl Tables {
    /// Table names with a common prefix (used by `portcullis init` and the tests).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            users: format!("{prefix}users"),
            refresh_tokens: format!("{prefix}refresh-tokens"),
            api_keys: format!("{prefix}api-keys"),
            rate_limits: format!("{prefix}rate-limits"),
            revoked_tokens: format!("{prefix}revoked-tokens"),
            oauth_clients: format!("{prefix}oauth-clients"),
            web_sessions: format!("{prefix}web-sessions"),
        }
    }
}

/// `LOGIN_RATE_LIMIT`: at most `max` requests per `window_seconds` per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u64,
    pub window_seconds: i64,
}

impl RateLimit {
    pub fn parse(text: &str) -> Option<Self> {
        let (max, window) = text.trim().split_once('/')?;
        let max: u64 = max.trim().parse().ok()?;
        let window_seconds: i64 = window.trim().parse().ok()?;
        (max > 0 && window_seconds > 0).then_some(Self {
            max,
            window_seconds,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tables: Tables,
    pub signing_keys_secret_id: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub login_rate_limit: RateLimit,
    pub lockout_threshold: u32,
    pub lockout_seconds: i64,
    pub refresh_cookie: bool,
    pub jwt_leeway: i64,
    pub hash_profile: HashProfile,
    /// `PASSWORD_POLICY`, e.g. `min=8,upper,lower,digit,special` (the default), parsed.
    pub password_rules: PasswordRules,
    /// Seconds after a rotation during which presenting the spent token again is treated
    /// as a concurrent request of the same client (refused, family kept), not as reuse.
    pub refresh_reuse_grace: i64,
    /// Path the refresh cookie is scoped to (cookie mode).
    pub refresh_cookie_path: String,
    /// `AUTHORIZER_RESPONSE`: how the authorizer answers HTTP API 2.0 events.
    pub authorizer_response: AuthorizerResponse,
    /// `AUTHORIZER_ROUTE_RULES`, e.g. `GET /admin/*=role:admin; POST /orders=scope:orders:write`,
    /// parsed.
    pub authorizer_route_rules: Vec<RouteRule>,
    /// How often (seconds) an authorizer container reloads the revocation list.
    pub revocation_refresh: i64,
    /// How long (seconds) the authorizer trusts a validated API key without re-reading it.
    pub api_key_cache: i64,
    /// The same for the validate-key function; 0 (the default): every validation reads the
    /// key, so a revocation is seen at once.
    pub validate_key_cache: i64,
    /// At most one last-used write per key per this many seconds.
    pub api_key_last_used_interval: i64,
    /// How often (seconds) a container re-reads the signing-key secret.
    pub signing_keys_refresh: i64,
    /// Where the JWK Set is published (default: the issuer + `/.well-known/jwks.json`).
    pub jwks_uri: String,
    /// The URL the OAuth endpoints live under (`{base}/oauth/token`, ...): the issuer by
    /// default, as on API Gateway; locally the `oauth` function's URL.
    pub oauth_endpoint_base: String,
    /// The scopes the metadata document lists (`scopes_supported`); empty: not listed.
    pub oauth_scopes_supported: Vec<String>,
    /// Token-endpoint requests per client id (`OAUTH_TOKEN_RATE_LIMIT`, default 60/60).
    pub oauth_token_rate_limit: RateLimit,
    /// Token-endpoint requests per source IP (`OAUTH_TOKEN_IP_RATE_LIMIT`, default 300/60).
    pub oauth_token_ip_rate_limit: RateLimit,
    /// Where the `web` function's pages live (`{base}/auth/signin`, `{base}/oauth/authorize`);
    /// the OAuth endpoint base by default. Its origin is the one unsafe requests must come from.
    pub web_base_url: String,
    /// A browser session ends after this many seconds without a request (`SESSION_IDLE_SECONDS`).
    pub session_idle: i64,
    /// ... and this many seconds after sign-in whatever happens (`SESSION_ABSOLUTE_SECONDS`).
    pub session_absolute: i64,
    /// The secret holding the MFA key (`MFA_KEY_SECRET_ID`; default the signing secret's id +
    /// `-mfa`).
    pub mfa_key_secret_id: String,
    /// The issuer name authenticator apps show (`MFA_ISSUER`, default `Portcullis`).
    pub mfa_issuer: String,
    /// `SELF_SIGNUP` (off): whether `POST /auth/register` is open.
    pub self_signup: bool,
    /// `REQUIRE_VERIFIED_EMAIL` (on): self-registered accounts log in once verified.
    pub require_verified_email: bool,
    /// `MAIL_FROM`: the SES sender (a verified identity); empty: mail is unavailable.
    pub mail_from: String,
    /// `MAIL_PRODUCT_NAME` (Portcullis): the name the mails use.
    pub mail_product_name: String,
    /// `VERIFY_EMAIL_URL`: the link in verification mails; `{token}` is replaced.
    pub verify_email_url: String,
    /// `PASSWORD_RESET_URL`: the link in reset mails; `{token}` is replaced.
    pub password_reset_url: String,
    /// Register / resend / reset requests per source IP (`ACCOUNT_RATE_LIMIT`, 20/900).
    pub account_ip_rate_limit: RateLimit,
    /// ... and per email address (`ACCOUNT_EMAIL_RATE_LIMIT`, 3/900).
    pub account_email_rate_limit: RateLimit,
    /// Register, resend and reset requests answer no sooner than this (milliseconds), so the
    /// work that differs between known and unknown addresses cannot show in the time.
    pub account_response_floor_ms: u64,
}

/// The response format of the authorizer for HTTP API payload 2.0 events (REST API events
/// always get IAM policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerResponse {
    /// `{"isAuthorized": ..., "context": ...}` (HTTP API with EnableSimpleResponses).
    Simple,
    /// IAM policy documents.
    Iam,
}

/// A variable is missing or has a value we cannot use. The message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read any key/value source (tests pass a map; nothing touches the real environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str| {
            get(name)
                .ok_or_else(|| ConfigError(format!("missing required environment variable {name}")))
        };
        let number = |name: &str, default: i64, min: i64, max: i64| -> Result<i64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(text) => match text.parse::<i64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError(format!(
                        "{name} must be a whole number from {min} to {max}"
                    ))),
                },
            }
        };

        let tables = Tables {
            users: required("USERS_TABLE")?,
            refresh_tokens: required("REFRESH_TOKENS_TABLE")?,
            api_keys: required("API_KEYS_TABLE")?,
            rate_limits: required("RATE_LIMITS_TABLE")?,
            revoked_tokens: required("REVOKED_TOKENS_TABLE")?,
            oauth_clients: required("OAUTH_CLIENTS_TABLE")?,
            web_sessions: required("WEB_SESSIONS_TABLE")?,
        };
        let rate_limit = |name: &str, max: u64, window_seconds: i64| match get(name) {
            None => Ok(RateLimit {
                max,
                window_seconds,
            }),
            Some(text) => RateLimit::parse(&text).ok_or_else(|| {
                ConfigError(format!("{name} must look like 5/900 (requests/seconds)"))
            }),
        };
        let login_rate_limit = rate_limit("LOGIN_RATE_LIMIT", 5, 900)?;
        let switch = |name: &str, default: bool| match get(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => Ok(default),
            Some("on" | "true" | "1" | "yes") => Ok(true),
            Some("off" | "false" | "0" | "no") => Ok(false),
            Some(_) => Err(ConfigError(format!("{name} must be on or off"))),
        };
        // Mail links: an absolute URL with `{token}`; by default a page beside the web pages
        // (the token after `#`, so it never reaches a server log or a Referer).
        let link_template = |name: &str, default_path: &str| match get(name) {
            Some(url)
                if (url.starts_with("https://") || url.starts_with("http://"))
                    && url.contains("{token}") =>
            {
                Ok(url)
            }
            Some(_) => Err(ConfigError(format!(
                "{name} must be an absolute http(s) URL containing {{token}}"
            ))),
            None => Ok(format!(
                "{}{default_path}",
                get("WEB_BASE_URL")
                    .or_else(|| get("OAUTH_ENDPOINT_BASE"))
                    .or_else(|| get("JWT_ISSUER"))
                    .unwrap_or_default()
                    .trim_end_matches('/')
            )),
        };
        let refresh_cookie = match get("REFRESH_COOKIE")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("off" | "false" | "0" | "no") => false,
            Some("on" | "true" | "1" | "yes") => true,
            Some(_) => return Err(ConfigError("REFRESH_COOKIE must be on or off".into())),
        };
        let hash_profile = match get("PASSWORD_HASH_PROFILE").as_deref() {
            None | Some("production") => HashProfile::Production,
            Some("insecure-test") => HashProfile::InsecureTest,
            Some(_) => {
                return Err(ConfigError(
                    "PASSWORD_HASH_PROFILE must be production or insecure-test".into(),
                ));
            }
        };
        let password_rules = match get("PASSWORD_POLICY") {
            None => PasswordRules::default(),
            Some(text) => PasswordRules::parse(&text)
                .map_err(|e| ConfigError(format!("PASSWORD_POLICY: {e}")))?,
        };

        Ok(Self {
            tables,
            signing_keys_secret_id: required("SIGNING_KEYS_SECRET_ID")?,
            jwt_issuer: required("JWT_ISSUER")?,
            jwt_audience: required("JWT_AUDIENCE")?,
            access_token_ttl: number("ACCESS_TOKEN_TTL_SECONDS", 900, 30, 86_400)?,
            refresh_token_ttl: number("REFRESH_TOKEN_TTL_SECONDS", 604_800, 60, 31_536_000)?,
            login_rate_limit,
            lockout_threshold: number("LOCKOUT_THRESHOLD", 5, 1, 1000)? as u32,
            lockout_seconds: number("LOCKOUT_SECONDS", 1800, 1, 31_536_000)?,
            refresh_cookie,
            jwt_leeway: number("JWT_LEEWAY_SECONDS", 5, 0, 300)?,
            hash_profile,
            password_rules,
            refresh_reuse_grace: number("REFRESH_REUSE_GRACE_SECONDS", 0, 0, 300)?,
            authorizer_response: match get("AUTHORIZER_RESPONSE").as_deref() {
                None | Some("simple") => AuthorizerResponse::Simple,
                Some("iam") => AuthorizerResponse::Iam,
                Some(_) => {
                    return Err(ConfigError(
                        "AUTHORIZER_RESPONSE must be simple or iam".into(),
                    ));
                }
            },
            authorizer_route_rules: RouteRule::parse_all(
                &get("AUTHORIZER_ROUTE_RULES").unwrap_or_default(),
            )
            .map_err(|e| ConfigError(format!("AUTHORIZER_ROUTE_RULES: {e}")))?,
            revocation_refresh: number("REVOCATION_REFRESH_SECONDS", 5, 1, 300)?,
            api_key_cache: number("API_KEY_CACHE_SECONDS", 30, 0, 3600)?,
            validate_key_cache: number("VALIDATE_KEY_CACHE_SECONDS", 0, 0, 3600)?,
            api_key_last_used_interval: number(
                "API_KEY_LAST_USED_INTERVAL_SECONDS",
                300,
                1,
                86_400,
            )?,
            signing_keys_refresh: number("SIGNING_KEYS_REFRESH_SECONDS", 300, 10, 86_400)?,
            jwks_uri: get("JWKS_URI").unwrap_or_else(|| {
                let issuer = lookup("JWT_ISSUER").unwrap_or_default();
                format!(
                    "{}/.well-known/jwks.json",
                    issuer.trim().trim_end_matches('/')
                )
            }),
            oauth_endpoint_base: get("OAUTH_ENDPOINT_BASE")
                .or_else(|| get("JWT_ISSUER"))
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            oauth_scopes_supported: get("OAUTH_SCOPES_SUPPORTED")
                .unwrap_or_default()
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            oauth_token_rate_limit: rate_limit("OAUTH_TOKEN_RATE_LIMIT", 60, 60)?,
            oauth_token_ip_rate_limit: rate_limit("OAUTH_TOKEN_IP_RATE_LIMIT", 300, 60)?,
            web_base_url: match get("WEB_BASE_URL") {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    url.trim_end_matches('/').to_owned()
                }
                Some(_) => {
                    return Err(ConfigError(
                        "WEB_BASE_URL must be an absolute http(s) URL".into(),
                    ));
                }
                // As on API Gateway: the pages live beside the OAuth endpoints.
                None => get("OAUTH_ENDPOINT_BASE")
                    .or_else(|| get("JWT_ISSUER"))
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned(),
            },
            session_idle: number("SESSION_IDLE_SECONDS", 1800, 60, 86_400)?,
            session_absolute: number("SESSION_ABSOLUTE_SECONDS", 43_200, 300, 2_592_000)?,
            mfa_key_secret_id: get("MFA_KEY_SECRET_ID").unwrap_or_else(|| {
                format!(
                    "{}-mfa",
                    lookup("SIGNING_KEYS_SECRET_ID").unwrap_or_default().trim()
                )
            }),
            self_signup: switch("SELF_SIGNUP", false)?,
            require_verified_email: switch("REQUIRE_VERIFIED_EMAIL", true)?,
            mail_from: get("MAIL_FROM").unwrap_or_default(),
            mail_product_name: get("MAIL_PRODUCT_NAME").unwrap_or_else(|| "Portcullis".into()),
            verify_email_url: link_template("VERIFY_EMAIL_URL", "/verify-email#token={token}")?,
            password_reset_url: link_template(
                "PASSWORD_RESET_URL",
                "/reset-password#token={token}",
            )?,
            account_ip_rate_limit: rate_limit("ACCOUNT_RATE_LIMIT", 20, 900)?,
            account_email_rate_limit: rate_limit("ACCOUNT_EMAIL_RATE_LIMIT", 3, 900)?,
            account_response_floor_ms: number("ACCOUNT_RESPONSE_FLOOR_MS", 400, 0, 10_000)? as u64,
            mfa_issuer: match get("MFA_ISSUER") {
                None => "Portcullis".to_owned(),
                Some(name) if name.len() <= 64 && !name.contains(':') => name,
                Some(_) => {
                    return Err(ConfigError(
                        "MFA_ISSUER must be at most 64 characters, without ':'".into(),
                    ));
                }
            },
            refresh_cookie_path: match get("REFRESH_COOKIE_PATH") {
                None => "/auth".to_owned(),
                Some(p)
                    if p.starts_with('/')
                        && p.chars().all(|c| c.is_ascii_graphic() && c != ';') =>
                {
                    p
                }
                Some(_) => {
                    return Err(ConfigError(
                        "REFRESH_COOKIE_PATH must be a path starting with /".into(),
                    ));
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("USERS_TABLE", "u"),
            ("REFRESH_TOKENS_TABLE", "r"),
            ("API_KEYS_TABLE", "k"),
            ("RATE_LIMITS_TABLE", "l"),
            ("REVOKED_TOKENS_TABLE", "x"),
            ("OAUTH_CLIENTS_TABLE", "c"),
            ("WEB_SESSIONS_TABLE", "w"),
            ("SIGNING_KEYS_SECRET_ID", "s"),
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "api"),
        ])
    }

    fn load(map: &HashMap<&str, &str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cfg = load(&base()).unwrap();
        assert_eq!(cfg.access_token_ttl, 900);
        assert_eq!(cfg.refresh_token_ttl, 604_800);
        assert_eq!(
            cfg.login_rate_limit,
            RateLimit {
                max: 5,
                window_seconds: 900
            }
        );
        assert_eq!(cfg.lockout_threshold, 5);
        assert_eq!(cfg.lockout_seconds, 1800);
        assert!(!cfg.refresh_cookie);
        assert_eq!(cfg.jwt_leeway, 5);
        assert_eq!(cfg.hash_profile, HashProfile::Production);
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for name in [
            "USERS_TABLE",
            "REFRESH_TOKENS_TABLE",
            "API_KEYS_TABLE",
            "RATE_LIMITS_TABLE",
            "REVOKED_TOKENS_TABLE",
            "OAUTH_CLIENTS_TABLE",
            "SIGNING_KEYS_SECRET_ID",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
        ] {
            let mut map = base();
            map.remove(name);
            let err = load(&map).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
            map.insert(name, "   ");
            assert!(load(&map).unwrap_err().to_string().contains(name));
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_name() {
        for (name, value) in [
            ("LOGIN_RATE_LIMIT", "5"),
            ("LOGIN_RATE_LIMIT", "0/900"),
            ("LOGIN_RATE_LIMIT", "a/b"),
            ("ACCESS_TOKEN_TTL_SECONDS", "soon"),
            ("ACCESS_TOKEN_TTL_SECONDS", "-1"),
            ("LOCKOUT_THRESHOLD", "0"),
            ("REFRESH_COOKIE", "maybe"),
            ("PASSWORD_HASH_PROFILE", "fast"),
            ("PASSWORD_POLICY", "min=x"),
            ("OAUTH_TOKEN_RATE_LIMIT", "60"),
            ("OAUTH_TOKEN_IP_RATE_LIMIT", "x/60"),
        ] {
            let mut map = base();
            map.insert(name, value);
            let err = load(&map).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn values_are_parsed() {
        let mut map = base();
        map.insert("LOGIN_RATE_LIMIT", " 10 / 60 ");
        map.insert("REFRESH_COOKIE", "on");
        map.insert("PASSWORD_HASH_PROFILE", "insecure-test");
        let cfg = load(&map).unwrap();
        assert_eq!(
            cfg.login_rate_limit,
            RateLimit {
                max: 10,
                window_seconds: 60
            }
        );
        assert!(cfg.refresh_cookie);
        assert_eq!(cfg.hash_profile, HashProfile::InsecureTest);
    }
}
