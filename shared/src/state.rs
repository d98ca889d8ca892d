//! Everything a function needs, built ONCE per cold start: configuration, the AWS clients
//! from one `aws_config` load, the signing keys, the stores. Nothing here runs per request.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Config;
use crate::error::{StoreError, StoreErrorKind};
use crate::keys::KeyRing;
use crate::password::{HashingPolicy, PasswordRules};
use crate::store::{ApiKeyStore, RateLimitStore, RefreshTokenStore, RevokedStore, UserStore};
use crate::token::TokenService;

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

    /// Read the signing key ring from Secrets Manager (current version).
    pub async fn load_key_ring(&self, secret_id: &str) -> Result<KeyRing, StoreError> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("secrets.get_secret_value", e))?;
        let text = out.secret_string().ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::Other,
                "secrets.get_secret_value",
                "the secret has no string value",
            )
        })?;
        KeyRing::from_secret(text)
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
}

impl AppState {
    /// Cold start: configuration, clients, key ring. Fails with a message that names the cause.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env().map_err(|e| StartupError(e.to_string()))?;
        let aws = AwsClients::load().await;
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
    pub fn new(config: Config, aws: AwsClients, ring: KeyRing) -> Self {
        let tokens = TokenService::new(
            Arc::new(ring),
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
            config,
            aws,
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
