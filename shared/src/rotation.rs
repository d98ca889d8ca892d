//! The Secrets Manager rotation function for the signing keys (`functions/rotate-keys`):
//! the createSecret / setSecret / testSecret / finishSecret protocol. Each rotation puts a new
//! EdDSA key first and keeps the previous keys for verification, exactly like
//! `portcullis signing-key rotate`.

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::error::{StoreError, StoreErrorKind};
use crate::keys::{KeyRing, rotated_secret};
use crate::state::AwsClients;
use crate::token::{TokenService, TokenUse};

/// The event Secrets Manager sends a rotation function.
#[derive(Debug, Clone, Deserialize)]
pub struct RotationEvent {
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
    #[serde(rename = "Step")]
    pub step: String,
}

fn other(op: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Other, op, detail)
}

async fn version_text(
    aws: &AwsClients,
    secret_id: &str,
    stage: &str,
    version: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let mut request = aws
        .secrets
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(stage);
    if let Some(v) = version {
        request = request.version_id(v);
    }
    match request.send().await {
        Ok(out) => Ok(out.secret_string().map(str::to_owned)),
        Err(e) => {
            let err = StoreError::from_sdk("rotation.get", e);
            if err.kind == StoreErrorKind::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Run one step. Idempotent: Secrets Manager retries steps.
pub async fn rotate(aws: &AwsClients, event: &RotationEvent) -> Result<(), StoreError> {
    let described = aws
        .secrets
        .describe_secret()
        .secret_id(&event.secret_id)
        .send()
        .await
        .map_err(|e| StoreError::from_sdk("rotation.describe", e))?;
    let stages = described
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default();
    let token_stages = stages.get(&event.token).cloned().unwrap_or_default();
    // createSecret makes the pending version itself; every later step needs it to exist.
    if token_stages.is_empty() && event.step != "createSecret" {
        return Err(other("rotation", "the version is not staged for rotation"));
    }
    match event.step.as_str() {
        "createSecret" => {
            if token_stages.iter().any(|s| s == "AWSCURRENT") {
                return Ok(());
            }
            if version_text(aws, &event.secret_id, "AWSPENDING", Some(&event.token))
                .await?
                .is_some()
            {
                return Ok(());
            }
            let current = version_text(aws, &event.secret_id, "AWSCURRENT", None)
                .await?
                .ok_or_else(|| other("rotation.create", "no current version"))?;
            let (text, kid) = rotated_secret(&current, Algorithm::EdDSA)
                .map_err(|e| other("rotation.create", e.to_string()))?;
            aws.secrets
                .put_secret_value()
                .secret_id(&event.secret_id)
                .client_request_token(&event.token)
                .secret_string(text)
                .version_stages("AWSPENDING")
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("rotation.put", e))?;
            tracing::info!(audit = "signing_key_created", kid = %kid, "rotation");
            Ok(())
        }
        // Nothing outside the secret holds the keys.
        "setSecret" => Ok(()),
        "testSecret" => {
            let pending = version_text(aws, &event.secret_id, "AWSPENDING", Some(&event.token))
                .await?
                .ok_or_else(|| other("rotation.test", "no pending version"))?;
            let ring = KeyRing::from_secret(&pending)
                .map_err(|e| other("rotation.test", e.to_string()))?;
            let service = TokenService::new(
                ring.into(),
                "rotation-test".into(),
                "rotation-test".into(),
                60,
                60,
                0,
            );
            let issued = service
                .issue_access("rotation-test", "rotation@test.invalid", "test", 1)
                .map_err(|e| other("rotation.test", e.to_string()))?;
            service
                .verify(&issued.token, TokenUse::Access, 1)
                .map_err(|e| other("rotation.test", format!("{e:?}")))?;
            Ok(())
        }
        "finishSecret" => {
            let current_version = stages
                .iter()
                .find(|(_, s)| s.iter().any(|x| x == "AWSCURRENT"))
                .map(|(v, _)| v.clone());
            if current_version.as_deref() == Some(event.token.as_str()) {
                return Ok(());
            }
            let mut request = aws
                .secrets
                .update_secret_version_stage()
                .secret_id(&event.secret_id)
                .version_stage("AWSCURRENT")
                .move_to_version_id(&event.token);
            if let Some(v) = current_version {
                request = request.remove_from_version_id(v);
            }
            request
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("rotation.finish", e))?;
            tracing::info!(audit = "signing_key_rotated", "rotation");
            Ok(())
        }
        other_step => Err(other("rotation", format!("unknown step {other_step:?}"))),
    }
}

/// Run the rotation function.
pub async fn serve() -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
    lambda_http::tracing::init_default_subscriber();
    let aws = AwsClients::load().await;
    let aws = &aws;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<RotationEvent>| async move {
            rotate(aws, &event.payload)
                .await
                .map_err(|e| lambda_runtime::Diagnostic {
                    error_type: "RotationFailed".into(),
                    error_message: e.to_string(),
                })
        },
    ))
    .await
}
