//! Administration used by the CLI and the test tooling: create the tables and the signing
//! secret where missing, create users.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use jsonwebtoken::Algorithm;

use crate::config::{Config, Tables};
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::ids;
use crate::keys::KeyRing;
use crate::login::normalise_email;
use crate::password::{HashingPolicy, PasswordRules};
use crate::state::AwsClients;
use crate::store::{TTL_ATTRIBUTE, User, UserStore, built};

/// One table's shape: hash key, optional range key, GSIs (name, hash key), TTL on/off.
struct TableSpec<'a> {
    name: &'a str,
    hash: &'a str,
    range: Option<&'a str>,
    indexes: &'a [(&'a str, &'a str)],
    ttl: bool,
}

fn specs(tables: &Tables) -> [TableSpec<'_>; 7] {
    [
        TableSpec {
            name: &tables.users,
            hash: "email",
            range: None,
            indexes: &[("byId", "id")],
            ttl: false,
        },
        TableSpec {
            name: &tables.refresh_tokens,
            hash: "tokenHash",
            range: None,
            indexes: &[("byUser", "userId"), ("byFamily", "familyId")],
            ttl: true,
        },
        TableSpec {
            name: &tables.api_keys,
            hash: "keyId",
            range: None,
            indexes: &[],
            ttl: true,
        },
        TableSpec {
            name: &tables.rate_limits,
            hash: "pk",
            range: None,
            indexes: &[],
            ttl: true,
        },
        TableSpec {
            name: &tables.revoked_tokens,
            hash: "pk",
            range: Some("sk"),
            indexes: &[],
            ttl: true,
        },
        TableSpec {
            name: &tables.oauth_clients,
            hash: "clientId",
            range: None,
            indexes: &[],
            ttl: false,
        },
        TableSpec {
            name: &tables.web_sessions,
            hash: "pk",
            range: None,
            indexes: &[("byUser", "userId")],
            ttl: true,
        },
    ]
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    built(
        "init.key",
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build(),
    )
}

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    built(
        "init.attr",
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build(),
    )
}

/// What `init` did, for the CLI to print.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub created_tables: Vec<String>,
    pub existing_tables: Vec<String>,
    pub created_secret: bool,
    pub created_mfa_key: bool,
    /// The SES identity registered for `MAIL_FROM`, when it is set.
    pub mail_identity: Option<String>,
}

/// Create every table the configuration names (TTL on, GSIs) and the signing secret (a JWK
/// Set with one key of `alg`), each only where missing.
pub async fn init(
    aws: &AwsClients,
    tables: &Tables,
    secret_id: &str,
    alg: Algorithm,
) -> Result<InitReport, StoreError> {
    let mut report = InitReport::default();
    for spec in specs(tables) {
        if create_table(aws, &spec).await? {
            report.created_tables.push(spec.name.to_owned());
        } else {
            report.existing_tables.push(spec.name.to_owned());
        }
    }
    report.created_secret = create_secret(aws, secret_id, alg).await?;
    Ok(report)
}

async fn create_table(aws: &AwsClients, spec: &TableSpec<'_>) -> Result<bool, StoreError> {
    let db = &aws.dynamodb;
    let mut request = db
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(spec.hash)?)
        .key_schema(key(spec.hash, KeyType::Hash)?);
    if let Some(range) = spec.range {
        request = request
            .attribute_definitions(attr(range)?)
            .key_schema(key(range, KeyType::Range)?);
    }
    for (index, hash) in spec.indexes {
        request = request
            .attribute_definitions(attr(hash)?)
            .global_secondary_indexes(built(
                "init.gsi",
                GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .key_schema(key(hash, KeyType::Hash)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build(),
            )?);
    }
    let created = match request.send().await {
        Ok(_) => true,
        Err(e) => {
            let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
            if code.as_deref() == Some("ResourceInUseException") {
                false
            } else {
                return Err(StoreError::from_sdk("init.create_table", e));
            }
        }
    };
    // Wait until ACTIVE (immediate locally; seconds on AWS).
    for _ in 0..120 {
        let out = db
            .describe_table()
            .table_name(spec.name)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("init.describe_table", e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if spec.ttl && created {
        db.update_time_to_live()
            .table_name(spec.name)
            .time_to_live_specification(built(
                "init.ttl",
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("init.update_time_to_live", e))?;
    }
    Ok(created)
}

async fn create_secret(
    aws: &AwsClients,
    secret_id: &str,
    alg: Algorithm,
) -> Result<bool, StoreError> {
    ensure_secret(
        aws,
        secret_id,
        "Portcullis signing keys (JWK Set; first key signs)",
        || {
            let jwk = KeyRing::generate_jwk(alg).map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "init.generate_key", e.to_string())
            })?;
            Ok(serde_json::json!({"keys": [jwk]}).to_string())
        },
    )
    .await
}

/// Create secret `secret_id` with the value `make` gives, unless it exists. `true`: created.
async fn ensure_secret(
    aws: &AwsClients,
    secret_id: &str,
    description: &str,
    make: impl FnOnce() -> Result<String, StoreError>,
) -> Result<bool, StoreError> {
    match aws
        .secrets
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
    {
        Ok(_) => return Ok(false),
        Err(e) => {
            let err = StoreError::from_sdk("init.describe_secret", e);
            if err.kind != StoreErrorKind::NotFound {
                return Err(err);
            }
        }
    }
    aws.secrets
        .create_secret()
        .name(secret_id)
        .description(description)
        .secret_string(make()?)
        .send()
        .await
        .map_err(|e| StoreError::from_sdk("init.create_secret", e))?;
    Ok(true)
}

/// Create a user after checking the email and the password policy. Returns the new user.
pub async fn create_user(
    users: &UserStore,
    hashing: &HashingPolicy,
    rules: &PasswordRules,
    email: &str,
    role: &str,
    password: &str,
    now: i64,
) -> Result<User, Error> {
    let email = normalise_email(email)?;
    let role = role.trim();
    if role.is_empty()
        || role.len() > 64
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':')
    {
        return Err(Error::validation(
            "role must be 1-64 characters of letters, digits, - _ :",
        ));
    }
    rules.check_new(password).map_err(Error::WeakPassword)?;
    let hash = hashing
        .hash(password)
        .map_err(|e| Error::internal(e.to_string()))?;
    let user = new_user(&email, role, hash, now);
    if !users.create(&user).await? {
        return Err(Error::validation("a user with this email already exists"));
    }
    Ok(user)
}

/// A new user record (not stored): verified, no second factor. An operator-made account is
/// verified by whoever made it; self sign-up clears the flag.
pub fn new_user(email: &str, role: &str, hash: crate::password::PasswordHash, now: i64) -> User {
    User {
        id: ids::new_id("usr"),
        email: email.to_owned(),
        role: role.to_owned(),
        password_hash: hash,
        failed_attempts: 0,
        locked_until: None,
        disabled: false,
        created_at: now,
        sessions_not_before: None,
        mfa: Default::default(),
        email_verified: true,
        verify_token_hash: None,
        verify_expires_at: None,
        reset_token_hash: None,
        reset_expires_at: None,
    }
}

/// `init` for a loaded configuration.
pub async fn init_from_config(
    aws: &AwsClients,
    config: &Config,
    alg: Algorithm,
) -> Result<InitReport, StoreError> {
    let mut report = init(aws, &config.tables, &config.signing_keys_secret_id, alg).await?;
    report.created_mfa_key = create_mfa_key(aws, &config.mfa_key_secret_id).await?;
    if !config.mail_from.is_empty() {
        report.mail_identity = Some(create_mail_identity(aws, &config.mail_from).await?);
    }
    Ok(report)
}

/// Register `MAIL_FROM`'s address as an SES identity where missing (locally the emulator
/// verifies it at once; on AWS this starts the verification SES then asks the owner for).
async fn create_mail_identity(aws: &AwsClients, from: &str) -> Result<String, StoreError> {
    let address = from
        .rsplit_once('<')
        .map_or(from, |(_, rest)| rest.trim_end_matches('>'))
        .trim()
        .to_owned();
    let ses = aws_sdk_sesv2::Client::new(&aws.sdk);
    match ses
        .create_email_identity()
        .email_identity(&address)
        .send()
        .await
    {
        Ok(_) => Ok(address),
        Err(e) => {
            let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
            if code.as_deref() == Some("AlreadyExistsException") {
                Ok(address)
            } else {
                Err(StoreError::from_sdk("init.create_email_identity", e))
            }
        }
    }
}

/// Create the MFA key's secret (256 random bits, base64) where missing.
async fn create_mfa_key(aws: &AwsClients, secret_id: &str) -> Result<bool, StoreError> {
    ensure_secret(
        aws,
        secret_id,
        "Portcullis MFA key (AES-256-GCM for TOTP secrets, pepper for recovery codes)",
        || Ok(crate::totp::MfaKey::generate_secret()),
    )
    .await
}

fn secret_error(op: &'static str, e: crate::keys::KeyRingError) -> StoreError {
    StoreError::new(StoreErrorKind::Other, op, e.to_string())
}

async fn put_secret(aws: &AwsClients, secret_id: &str, text: String) -> Result<(), StoreError> {
    aws.secrets
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(text)
        .send()
        .await
        .map_err(|e| StoreError::from_sdk("signing_keys.put", e))?;
    Ok(())
}

/// `portcullis signing-key rotate`: a new version of the secret with a new key of `alg`
/// first; the previous keys stay for verification. Returns the new kid.
pub async fn rotate_signing_key(
    aws: &AwsClients,
    secret_id: &str,
    alg: Algorithm,
) -> Result<String, StoreError> {
    let current = aws.current_secret(secret_id).await?;
    let (text, kid) = crate::keys::rotated_secret(&current, alg)
        .map_err(|e| secret_error("signing_keys.rotate", e))?;
    put_secret(aws, secret_id, text).await?;
    Ok(kid)
}

/// `portcullis signing-key retire KID`: a new version without that (non-signing) key.
pub async fn retire_signing_key(
    aws: &AwsClients,
    secret_id: &str,
    kid: &str,
) -> Result<(), StoreError> {
    let current = aws.current_secret(secret_id).await?;
    let text = crate::keys::retired_secret(&current, kid)
        .map_err(|e| secret_error("signing_keys.retire", e))?;
    put_secret(aws, secret_id, text).await
}
