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
use crate::password::{HashingPolicy, PasswordRules};
use crate::store::{ApiKeyStore, RateLimitStore, RefreshTokenStore, RevokedStore, UserStore};
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

/// The AWS clients, all from one shared configuration (so `AWS_ENDPOINT_URL` works).
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// One `aws_config` load with short timeouts: a Lambda that cannot reach its store should
    /// answer 503 quickly, not hang until the function times out.
    pub async fn load() -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(1500))
            .operation_attempt_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_secs(6))
            .build();
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
    pub tokens: TokenService,
    pub hashing: HashingPolicy,
    pub password_rules: PasswordRules,
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
        let password_rules = PasswordRules::parse(&config.password_policy).unwrap_or_default();
        Self {
            users: UserStore::new(aws.dynamodb.clone(), &config.tables.users),
            refresh_tokens: RefreshTokenStore::new(
                aws.dynamodb.clone(),
                &config.tables.refresh_tokens,
            ),
            rate_limits: RateLimitStore::new(aws.dynamodb.clone(), &config.tables.rate_limits),
            revoked: RevokedStore::new(aws.dynamodb.clone(), &config.tables.revoked_tokens),
            api_keys: ApiKeyStore::new(aws.dynamodb.clone(), &config.tables.api_keys),
            tokens,
            hashing,
            password_rules,
            key_cache: Arc::default(),
            config,
            aws,
            keys_loaded_at: Arc::new(AtomicI64::new(now())),
            kid_miss_at: Arc::new(AtomicI64::new(i64::MIN / 2)),
        }
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

/// Seconds since the Unix epoch, from the system clock. Only entrypoints call this; the
/// domain takes `now` as an argument.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
