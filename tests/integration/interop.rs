//! Interop: tokens issued by login verify with panva/jose (npm) and PyJWT (PyPI) using only
//! the JWKS the jwks function serves; tokens they sign with a ring key verify in the
//! authorizer; after a rotation old tokens still verify and new ones carry the new kid.

use std::path::PathBuf;
use std::process::Command;

use jsonwebtoken::Algorithm;
use portcullis::authorizer::Authorizer;
use portcullis::state::AppState;
use portcullis_tests::{
    RequestCounter, World, cli, clients, function_url, https_client, unique_email, watch_env,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse!";
const NOW: i64 = 1_800_000_000;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-interop-{}",
        portcullis::ids::new_id("t")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Run a peer (`node` or the venv's `python`) and return its stdout, insisting on success.
fn peer(lang: &str, args: &[&str]) -> String {
    let (program, script) = match lang {
        "node" => ("node".to_owned(), root().join("tests/interop/verify.mjs")),
        _ => (
            root().join(".venv/bin/python").display().to_string(),
            root().join("tests/interop/verify.py"),
        ),
    };
    let out = Command::new(program)
        .arg(script)
        .args(args)
        .output()
        .expect("run interop peer");
    assert!(
        out.status.success(),
        "{lang} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn served_jwks() -> Value {
    let resp = https_client()
        .get(format!("{}.well-known/jwks.json", function_url("jwks")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=300");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_jwks_and_discovery_documents_are_served_with_public_keys_only() {
    let jwks = served_jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        for private in ["d", "k", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private} served");
        }
    }
    let env = watch_env();
    let resp = https_client()
        .get(format!(
            "{}.well-known/openid-configuration",
            function_url("jwks")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["issuer"], env["JWT_ISSUER"].as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/.well-known/jwks.json", env["JWT_ISSUER"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    // anything else: 404 / 405, as JSON
    let resp = https_client()
        .get(format!("{}other", function_url("jwks")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "NOT_FOUND"
    );
    let resp = https_client()
        .post(format!("{}.well-known/jwks.json", function_url("jwks")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
}

#[tokio::test]
async fn login_tokens_verify_with_jose_and_pyjwt_from_the_served_jwks_only() {
    let email = unique_email("interop");
    let out = cli(
        &["user", "create", "--email", &email, "--role", "admin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success());
    let login: Value = https_client()
        .post(function_url("login"))
        .header("content-type", "application/json")
        .body(json!({"email": email, "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["data"]["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = login["data"]["tokens"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = temp_file("jwks.json", &served_jwks().await.to_string());
    let env = watch_env();
    let (iss, aud) = (env["JWT_ISSUER"].as_str(), env["JWT_AUDIENCE"].as_str());
    for lang in ["node", "python"] {
        let verified: Value = serde_json::from_str(&peer(
            lang,
            &["verify", jwks.to_str().unwrap(), &access, iss, aud],
        ))
        .unwrap();
        assert_eq!(verified["payload"]["email"], email.as_str(), "{lang}");
        assert_eq!(verified["payload"]["role"], "admin", "{lang}");
        assert_eq!(verified["payload"]["token_use"], "access", "{lang}");
        assert_eq!(verified["alg"], "EdDSA", "{lang}");
        // a refresh token never passes as an access token at a third party: wrong audience
        let out = Command::new(if lang == "node" {
            "node".to_owned()
        } else {
            root().join(".venv/bin/python").display().to_string()
        })
        .arg(root().join(if lang == "node" {
            "tests/interop/verify.mjs"
        } else {
            "tests/interop/verify.py"
        }))
        .args(["verify", jwks.to_str().unwrap(), &refresh, iss, aud])
        .output()
        .unwrap();
        assert!(
            !out.status.success(),
            "{lang} accepted a refresh token as an access token"
        );
    }
}

#[tokio::test]
async fn tokens_signed_by_jose_and_pyjwt_with_a_ring_key_pass_the_authorizer() {
    // The watch's own ring (read as an operator would), and an authorizer over its tables.
    let aws = clients(&RequestCounter::default()).await;
    let env = watch_env();
    let secret = aws
        .secrets
        .get_secret_value()
        .secret_id(&env["SIGNING_KEYS_SECRET_ID"])
        .send()
        .await
        .unwrap();
    let set: Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    let signer = set["keys"][0].clone();
    assert_eq!(signer["alg"], "EdDSA");
    let jwk = temp_file("key.json", &signer.to_string());
    let config = portcullis::config::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let ring = aws
        .load_key_ring(&config.signing_keys_secret_id)
        .await
        .unwrap();
    let authorizer = Authorizer::new(AppState::new(config.clone(), aws, ring));
    let now = portcullis::state::now();
    for lang in ["node", "python"] {
        let claims = json!({
            "iss": config.jwt_issuer, "aud": config.jwt_audience, "sub": format!("usr_{lang}"),
            "exp": now + 300, "iat": now, "jti": format!("at_{lang}_{}", portcullis::ids::new_id("x")),
            "token_use": "access", "email": format!("{lang}@example.com"), "role": "user",
        });
        let claims_file = temp_file("claims.json", &claims.to_string());
        let token = peer(
            lang,
            &["sign", jwk.to_str().unwrap(), claims_file.to_str().unwrap()],
        );
        let event = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"),
                           "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/whoami"});
        let policy = authorizer
            .handle(&event, now)
            .await
            .unwrap_or_else(|f| panic!("{lang}: {f:?}"));
        assert_eq!(policy["principalId"], format!("usr_{lang}"), "{lang}");
        assert_eq!(policy["policyDocument"]["Statement"][0]["Effect"], "Allow");
    }
}

#[tokio::test]
async fn after_a_rotation_old_tokens_verify_at_the_peers_and_new_ones_carry_the_new_kid() {
    let w = World::new(&[]).await;
    let secret_id = w.state.config.signing_keys_secret_id.clone();
    portcullis::admin::rotate_signing_key(&w.state.aws, &secret_id, Algorithm::EdDSA)
        .await
        .unwrap();
    w.state.reload_keys(NOW).await.unwrap();
    let old = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", portcullis::state::now())
        .unwrap()
        .token;
    let new_kid = portcullis::admin::rotate_signing_key(&w.state.aws, &secret_id, Algorithm::ES256)
        .await
        .unwrap();
    w.state.reload_keys(NOW).await.unwrap();
    let fresh = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", portcullis::state::now())
        .unwrap()
        .token;
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new_kid.as_str())
    );
    // the same document the jwks function serves for this ring
    let jwks = temp_file(
        "jwks.json",
        &w.state.tokens.ring().public_jwks().to_string(),
    );
    for lang in ["node", "python"] {
        for (token, alg) in [(&old, "EdDSA"), (&fresh, "ES256")] {
            let out: Value = serde_json::from_str(&peer(
                lang,
                &[
                    "verify",
                    jwks.to_str().unwrap(),
                    token,
                    &w.state.config.jwt_issuer,
                    &w.state.config.jwt_audience,
                ],
            ))
            .unwrap();
            assert_eq!(out["alg"], alg, "{lang}");
        }
    }
}
