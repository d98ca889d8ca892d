//! Everything a function needs, built ONCE per cold start: configuration, the AWS clients
//! from one `aws_config` load, the signing keys, the stores. Nothing here runs per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Config;
use crate::error::{StoreError, StoreErrorKind};
use crate::keys::KeyRing;
use crate::password::HashingPolicy;
use crate::store::{
    ApiKeyStore, ClientStore, RateLimitStore, RefreshTokenStore, RevokedStore, UserStore, WebStore,
};
use crate::token::{Claims, TokenError, TokenService, TokenUse};

/// At most one key-ring re-read per this many seconds when a token names an unknown `kid`.
pub const KID_MISS_RELOAD_SECONDS: i64 = 10;

/// Why a cold start failed. The message names the cause (a variable, the secret id), never
/// secret material.
#[derive(Debug)]
pub struct StartupError(pub String);

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cold start failed: {}", self.0)
    }
}

impl std::error::Error for StartupError {}

/// Roots of Amazon Trust Services: every AWS endpoint chains to one of them.
const AWS_ROOTS_PEM: &[u8] = include_bytes!("aws-roots.pem");

/// The HTTPS client for the AWS SDK. By default it trusts only the embedded Amazon roots:
/// reading and parsing the whole OS certificate store took most of a cold start (measured
/// with strace). `PORTCULLIS_TLS_ROOTS=native` restores the OS store (a proxy or a private
/// endpoint with its own CA).
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{
        Provider, TlsContext, TrustStore, rustls_provider::CryptoMode,
    };
    let native = std::env::var("PORTCULLIS_TLS_ROOTS").is_ok_and(|v| v == "native");
    let store = if native {
        TrustStore::default()
    } else {
        TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_ROOTS_PEM)
    };
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(store).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        Err(e) => {
            tracing::warn!(error = %e, "embedded trust store unusable; using the OS store");
            builder.build_https()
        }
    }
}

/// Variables of Lambda's standard environment that the direct configuration reads or may
/// ignore. Any other `AWS_*` variable (a profile, FIPS or dual-stack endpoints, a
/// service-specific endpoint, retry settings, ...) means the full `aws_config` chain.
const STANDARD_AWS_VARS: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_EXECUTION_ENV",
];

/// The SDK configuration straight from Lambda's standard variables — region, the execution
/// role's credentials, optionally `AWS_ENDPOINT_URL` — without the default chain's probing
/// (profile files, IMDS, the other providers): `aws_config` would end on the same values,
/// after more work at every cold start. `None` unless the region and both keys are set and
/// no other `AWS_*` setting is (Lambda's own `AWS_LAMBDA_*` and `AWS_XRAY_*` aside).
pub fn standard_env_config(
    env: &std::collections::HashMap<String, String>,
    timeouts: &TimeoutConfig,
) -> Option<SdkConfig> {
    use aws_config::Region;
    use aws_config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
    let unusual = env.iter().any(|(name, value)| {
        name.starts_with("AWS_")
            && !name.starts_with("AWS_LAMBDA_")
            && !name.starts_with("AWS_XRAY_")
            && !STANDARD_AWS_VARS.contains(&name.as_str())
            && !value.trim().is_empty()
    });
    if unusual {
        return None;
    }
    let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"))?;
    let credentials = Credentials::new(
        get("AWS_ACCESS_KEY_ID")?,
        get("AWS_SECRET_ACCESS_KEY")?,
        get("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts.clone())
        .http_client(https_client());
    // No sleep or time source here: each client's defaults (Tokio's sleep, the system clock)
    // fill them in, as they do for aws_config's.
    if let Some(url) = get("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    Some(builder.build())
}

/// The AWS clients, all from one shared configuration (so `AWS_ENDPOINT_URL` works).
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The shared configuration, for clients made on first use (SES: `AppState::mailer`).
    pub sdk: SdkConfig,
}

impl AwsClients {
    /// One shared configuration with short timeouts (a Lambda that cannot reach its store
    /// should answer 503 quickly, not hang until the function times out) and one HTTPS client
    /// for both SDK clients. Where the environment is Lambda's standard one (see
    /// `standard_env_config`), it is read directly; anything else goes through `aws_config`'s
    /// full default chain.
    pub async fn load() -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(1500))
            .operation_attempt_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_secs(6))
            .build();
        let env: std::collections::HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("AWS_"))
            .collect();
        if let Some(sdk) = standard_env_config(&env, &timeouts) {
            return Self::from_sdk_config(&sdk);
        }
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .http_client(https_client())
            .load()
            .await;
        Self::from_sdk_config(&sdk)
    }

    pub fn from_sdk_config(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            sdk: sdk.clone(),
        }
    }

    /// The current version (`AWSCURRENT`) of a secret's text.
    pub async fn current_secret(&self, secret_id: &str) -> Result<String, StoreError> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("secrets.get_secret_value", e))?;
        out.secret_string().map(str::to_owned).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::Other,
                "secrets.get_secret_value",
                "the secret has no string value",
            )
        })
    }

    /// Read the signing key ring from Secrets Manager (current version).
    pub async fn load_key_ring(&self, secret_id: &str) -> Result<KeyRing, StoreError> {
        let text = self.current_secret(secret_id).await?;
        KeyRing::from_secret(&text)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, "secrets.parse", e.to_string()))
    }
}

/// The state shared by every request of one container.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Config,
    pub aws: AwsClients,
    pub users: UserStore,
    pub refresh_tokens: RefreshTokenStore,
    pub rate_limits: RateLimitStore,
    pub revoked: RevokedStore,
    pub api_keys: ApiKeyStore,
    pub clients: ClientStore,
    pub web: WebStore,
    /// The MFA key, read from Secrets Manager on first use (only MFA paths need it).
    mfa_key: Arc<tokio::sync::OnceCell<Arc<crate::totp::MfaKey>>>,
    /// The SES client, made on first use (only the account function sends mail).
    mailer: Arc<tokio::sync::OnceCell<crate::mail::Mailer>>,
    pub tokens: TokenService,
    pub hashing: HashingPolicy,
    /// Positive API-key results of this container (see `apikeys::KeyCache`).
    pub key_cache: Arc<crate::apikeys::KeyCache>,
    /// When the key ring was last read, and when a `kid` miss last caused a read (shared by
    /// every clone of this state).
    keys_loaded_at: Arc<AtomicI64>,
    kid_miss_at: Arc<AtomicI64>,
}

impl AppState {
    /// Cold start: configuration, clients, key ring. Fails with a message that names the cause.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env().map_err(|e| StartupError(e.to_string()))?;
        let aws = AwsClients::load().await;
        Self::start(config, aws).await
    }

    /// The network part of a cold start: read the key ring. Retried per request while it
    /// fails (see `handlers::serve`), so an outage at cold start answers 503, not a crash loop.
    pub async fn start(config: Config, aws: AwsClients) -> Result<Self, StartupError> {
        let ring = aws
            .load_key_ring(&config.signing_keys_secret_id)
            .await
            .map_err(|e| {
                StartupError(format!(
                    "loading signing keys from {}: {e}",
                    config.signing_keys_secret_id
                ))
            })?;
        Ok(Self::new(config, aws, ring))
    }

    /// Assemble from parts (tests and the CLI use this with their own config and clients).
    pub fn new(config: Config, aws: AwsClients, ring: impl Into<Arc<KeyRing>>) -> Self {
        let tokens = TokenService::new(
            ring.into(),
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
            config.access_token_ttl,
            config.refresh_token_ttl,
            config.jwt_leeway,
        );
        let hashing = HashingPolicy::for_profile(config.hash_profile);
        if config.hash_profile == crate::config::HashProfile::InsecureTest {
            tracing::warn!(
                "PASSWORD_HASH_PROFILE=insecure-test: cheap argon2 parameters, never use in production"
            );
        }
        Self {
            users: UserStore::new(aws.dynamodb.clone(), &config.tables.users),
            refresh_tokens: RefreshTokenStore::new(
                aws.dynamodb.clone(),
                &config.tables.refresh_tokens,
            ),
            rate_limits: RateLimitStore::new(aws.dynamodb.clone(), &config.tables.rate_limits),
            revoked: RevokedStore::new(aws.dynamodb.clone(), &config.tables.revoked_tokens),
            api_keys: ApiKeyStore::new(aws.dynamodb.clone(), &config.tables.api_keys),
            clients: ClientStore::new(aws.dynamodb.clone(), &config.tables.oauth_clients),
            web: WebStore::new(aws.dynamodb.clone(), &config.tables.web_sessions),
            mfa_key: Arc::default(),
            mailer: Arc::default(),
            tokens,
            hashing,
            key_cache: Arc::default(),
            config,
            aws,
            keys_loaded_at: Arc::new(AtomicI64::new(now())),
            kid_miss_at: Arc::new(AtomicI64::new(i64::MIN / 2)),
        }
    }

    /// The MFA key: one Secrets Manager read per container, on first use; a failed read is
    /// retried by the next request (and answered 503 meanwhile: fail closed).
    pub async fn mfa_key(&self) -> Result<Arc<crate::totp::MfaKey>, crate::Error> {
        self.mfa_key
            .get_or_try_init(|| async {
                let text = self
                    .aws
                    .current_secret(&self.config.mfa_key_secret_id)
                    .await?;
                crate::totp::MfaKey::from_secret(&text)
                    .map(Arc::new)
                    .ok_or_else(|| {
                        crate::Error::Unavailable(format!(
                            "the secret {} is not a 32-byte base64 key",
                            self.config.mfa_key_secret_id
                        ))
                    })
            })
            .await
            .cloned()
    }

    /// The mailer (`MAIL_FROM` must be set: without a sender, mail is unavailable: 503).
    pub async fn mailer(&self) -> Result<&crate::mail::Mailer, crate::Error> {
        if self.config.mail_from.is_empty() {
            return Err(crate::Error::Unavailable("MAIL_FROM is not set".into()));
        }
        Ok(self
            .mailer
            .get_or_init(|| async {
                crate::mail::Mailer::new(&self.aws.sdk, &self.config.mail_from)
            })
            .await)
    }

    /// Re-read the signing keys from Secrets Manager and put them in force.
    pub async fn reload_keys(&self, now: i64) -> Result<(), StoreError> {
        self.keys_loaded_at.store(now, Ordering::Relaxed);
        let ring = self
            .aws
            .load_key_ring(&self.config.signing_keys_secret_id)
            .await?;
        self.tokens.replace_ring(ring);
        Ok(())
    }

    /// Once per `SIGNING_KEYS_REFRESH_SECONDS`: pick up a rotated secret without a redeploy.
    /// A failed read keeps the ring in force (its keys stay valid) and is retried next interval.
    pub async fn refresh_keys_if_stale(&self, now: i64) {
        let loaded = self.keys_loaded_at.load(Ordering::Relaxed);
        if (now - loaded >= self.config.signing_keys_refresh || now < loaded)
            && let Err(e) = self.reload_keys(now).await
        {
            tracing::warn!(error = %e, "signing keys not refreshed; keeping the ring in force");
        }
    }

    /// Verify a token; when it names a `kid` we do not hold (a key rotated in since our last
    /// read), re-read the ring once — at most every `KID_MISS_RELOAD_SECONDS` — and retry.
    pub async fn verify_token(
        &self,
        token: &str,
        expected: TokenUse,
        now: i64,
    ) -> Result<Claims, TokenError> {
        match self.tokens.verify(token, expected, now) {
            Err(TokenError::UnknownKey) => {
                let last = self.kid_miss_at.load(Ordering::Relaxed);
                if now - last < KID_MISS_RELOAD_SECONDS && now >= last {
                    return Err(TokenError::UnknownKey);
                }
                self.kid_miss_at.store(now, Ordering::Relaxed);
                match self.reload_keys(now).await {
                    Ok(()) => self.tokens.verify(token, expected, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "signing keys not re-read after an unknown kid");
                        Err(TokenError::UnknownKey)
                    }
                }
            }
            other => other,
        }
    }
}

impl crate::apikeys::KeyContext for AppState {
    fn api_keys(&self) -> &ApiKeyStore {
        &self.api_keys
    }

    fn last_used_interval(&self) -> i64 {
        self.config.api_key_last_used_interval
    }
}

/// Where a cold start's time goes, from `main` to ready for the first event: logged once per
/// container as `cold start config_us=… clients_us=… ready_us=…` (microseconds since `main`:
/// configuration read, AWS clients built, network reads done). Operators see it in the
/// function's log; `make bench` reads it for the cold-path profile.
pub struct ColdStart(std::time::Instant);

impl ColdStart {
    pub fn begin() -> Self {
        Self(std::time::Instant::now())
    }

    pub fn micros(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn log(&self, config_us: u64, clients_us: u64) {
        tracing::info!(
            config_us,
            clients_us,
            ready_us = self.micros(),
            "cold start"
        );
    }
}

/// Seconds since the Unix epoch, from the system clock. Only entrypoints call this; the
/// domain takes `now` as an argument.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("AWS_LAMBDA_FUNCTION_NAME", "login"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
    ];

    #[test]
    fn lambdas_standard_environment_is_read_directly() {
        let timeouts = TimeoutConfig::builder().build();
        let sdk = standard_env_config(&env(LAMBDA), &timeouts).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(sdk.credentials_provider().is_some());
        assert_eq!(sdk.endpoint_url(), None);
        let mut local = env(LAMBDA);
        local.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:4566".into());
        let sdk = standard_env_config(&local, &timeouts).unwrap();
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:4566"));
    }

    #[test]
    fn anything_unusual_takes_the_full_chain() {
        let timeouts = TimeoutConfig::builder().build();
        for extra in [
            "AWS_PROFILE",
            "AWS_USE_FIPS_ENDPOINT",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_MAX_ATTEMPTS",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            let mut vars = env(LAMBDA);
            vars.insert(extra.into(), "x".into());
            assert!(standard_env_config(&vars, &timeouts).is_none(), "{extra}");
        }
        for missing in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let mut vars = env(LAMBDA);
            vars.remove(missing);
            assert!(standard_env_config(&vars, &timeouts).is_none(), "{missing}");
        }
        let mut no_region = env(LAMBDA);
        no_region.remove("AWS_REGION");
        no_region.remove("AWS_DEFAULT_REGION");
        assert!(standard_env_config(&no_region, &timeouts).is_none());
    }
}
