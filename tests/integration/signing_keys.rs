//! Signing-key rotation against the emulator's Secrets Manager: the CLI's rotate/retire, the
//! rotation function's four steps, pick-up by running containers without a redeploy.

use jsonwebtoken::Algorithm;
use portcullis::admin::{retire_signing_key, rotate_signing_key};
use portcullis::rotation::{RotationEvent, rotate};
use portcullis::state::AppState;
use portcullis::token::{TokenError, TokenUse};
use portcullis_tests::World;

const NOW: i64 = 1_800_000_000;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_new_tokens_carry_the_new_kid() {
    let w = World::new(&[("SIGNING_KEYS_REFRESH_SECONDS", "60")]).await;
    let secret_id = w.state.config.signing_keys_secret_id.clone();
    let old = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", NOW)
        .unwrap()
        .token;
    let old_kid = kid_of(&old);
    let new_kid = rotate_signing_key(&w.state.aws, &secret_id, Algorithm::EdDSA)
        .await
        .unwrap();
    assert_ne!(new_kid, old_kid);
    // a running container keeps its ring until the refresh interval...
    w.state
        .refresh_keys_if_stale(portcullis::state::now() + 30)
        .await;
    let still_old = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", NOW)
        .unwrap()
        .token;
    assert_eq!(kid_of(&still_old), old_kid);
    // ...and picks the new version up once it has passed, without a redeploy
    w.state
        .refresh_keys_if_stale(portcullis::state::now() + 61)
        .await;
    let fresh = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", NOW)
        .unwrap();
    assert_eq!(kid_of(&fresh.token), new_kid);
    assert_eq!(
        jsonwebtoken::decode_header(&fresh.token).unwrap().alg,
        Algorithm::EdDSA
    );
    // old tokens still verify until they expire; new ones verify too
    assert!(w.state.tokens.verify(&old, TokenUse::Access, NOW).is_ok());
    assert!(
        w.state
            .tokens
            .verify(&fresh.token, TokenUse::Access, NOW)
            .is_ok()
    );
    // retiring the old key ends its tokens; the signer cannot be retired
    assert!(
        retire_signing_key(&w.state.aws, &secret_id, &new_kid)
            .await
            .is_err()
    );
    retire_signing_key(&w.state.aws, &secret_id, &old_kid)
        .await
        .unwrap();
    w.state.reload_keys(NOW).await.unwrap();
    assert_eq!(
        w.state.tokens.verify(&old, TokenUse::Access, NOW),
        Err(TokenError::UnknownKey)
    );
    assert!(
        w.state
            .tokens
            .verify(&fresh.token, TokenUse::Access, NOW)
            .is_ok()
    );
}

#[tokio::test]
async fn a_container_that_has_not_reloaded_accepts_a_token_of_the_new_key_at_once() {
    let w = World::new(&[]).await;
    let secret_id = w.state.config.signing_keys_secret_id.clone();
    // container B started before the rotation
    let ring = w.state.aws.load_key_ring(&secret_id).await.unwrap();
    let b = AppState::new(w.state.config.clone(), w.state.aws.clone(), ring);
    rotate_signing_key(&w.state.aws, &secret_id, Algorithm::ES256)
        .await
        .unwrap();
    w.state.reload_keys(NOW).await.unwrap();
    let token = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", NOW)
        .unwrap()
        .token;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        Algorithm::ES256
    );
    assert_eq!(
        b.tokens.verify(&token, TokenUse::Access, NOW),
        Err(TokenError::UnknownKey)
    );
    // the unknown kid makes B re-read the secret once, then it verifies
    assert!(b.verify_token(&token, TokenUse::Access, NOW).await.is_ok());
    // an attacker's random kids cost at most one re-read per interval
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.kid = Some("nope".into());
    let claims = w
        .state
        .tokens
        .verify(&token, TokenUse::Access, NOW)
        .unwrap();
    let forged =
        jsonwebtoken::encode(&header, &claims, w.state.tokens.ring().signer().encoding()).unwrap();
    assert!(
        b.verify_token(&forged, TokenUse::Access, NOW + 1)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_rotation_function_runs_the_four_steps_idempotently() {
    let w = World::new(&[]).await;
    let secret_id = w.state.config.signing_keys_secret_id.clone();
    let before = w.state.aws.load_key_ring(&secret_id).await.unwrap();
    let token = "00000000-0000-4000-8000-0000000000aa".to_string();
    for step in [
        "createSecret",
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
        "finishSecret",
    ] {
        let event = RotationEvent {
            secret_id: secret_id.clone(),
            token: token.clone(),
            step: step.into(),
        };
        rotate(&w.state.aws, &event)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    let after = w.state.aws.load_key_ring(&secret_id).await.unwrap();
    assert_eq!(
        after.keys().len(),
        before.keys().len() + 1,
        "exactly one new key despite retries"
    );
    assert_eq!(after.signer().alg, Algorithm::EdDSA);
    assert!(
        after.find(&before.signer().kid).is_some(),
        "the previous signer still verifies"
    );
    let bad = RotationEvent {
        secret_id: secret_id.clone(),
        token: "not-staged".into(),
        step: "testSecret".into(),
    };
    assert!(rotate(&w.state.aws, &bad).await.is_err());
}
