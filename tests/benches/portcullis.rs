//! Microbenchmarks (criterion): token verification per algorithm vs the bare signature
//! primitive it rests on; the authorizer's whole in-process decision vs that primitive; and,
//! when the local stack is up (`make bench` starts it), login's handler vs one argon2id verify
//! with the same parameters, and the same handler with DynamoDB answered in-process (the code's
//! own cost over the hash). Figures are printed, never asserted.

use std::hint::black_box;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use portcullis::authorizer::Authorizer;
use portcullis::keys::KeyRing;
use portcullis::state::{AppState, AwsClients};
use portcullis::store::RevocationSet;
use portcullis::token::TokenUse;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// An app state whose AWS clients point nowhere: the benchmarked paths make no call.
fn offline_state(alg: Algorithm) -> (AppState, serde_json::Value) {
    let jwk = KeyRing::generate_jwk(alg).unwrap();
    let ring = KeyRing::from_secret(&json!({"keys": [jwk.clone()]}).to_string()).unwrap();
    let config = portcullis_tests::config(
        "bench-",
        &[
            ("AUTHORIZER_RESPONSE", "iam"),
            ("REVOCATION_REFRESH_SECONDS", "300"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "b", "b", None, None, "bench",
            ))
            .load(),
    );
    (
        AppState::new(config, AwsClients::from_sdk_config(&sdk), ring),
        jwk,
    )
}

fn verification(c: &mut Criterion) {
    for (alg, name) in [
        (Algorithm::HS256, "HS256"),
        (Algorithm::EdDSA, "EdDSA"),
        (Algorithm::ES256, "ES256"),
    ] {
        let (state, jwk) = offline_state(alg);
        let token = state
            .tokens
            .issue_access("usr_bench", "bench@example.com", "admin", NOW)
            .unwrap()
            .token;
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = b64(signature);
        let mut group = c.benchmark_group(format!("verify/{name}"));
        group.bench_function("token_service", |b| {
            b.iter(|| {
                state
                    .tokens
                    .verify(black_box(&token), TokenUse::Access, NOW)
                    .unwrap()
            })
        });
        match alg {
            Algorithm::HS256 => {
                let key = aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA256,
                    &b64(jwk["k"].as_str().unwrap()),
                );
                group.bench_function("primitive", |b| {
                    b.iter(|| {
                        aws_lc_rs::hmac::verify(&key, black_box(message.as_bytes()), &signature)
                            .unwrap()
                    })
                });
            }
            Algorithm::EdDSA => {
                let key = UnparsedPublicKey::new(&ED25519, b64(jwk["x"].as_str().unwrap()));
                group.bench_function("primitive", |b| {
                    b.iter(|| {
                        key.verify(black_box(message.as_bytes()), &signature)
                            .unwrap()
                    })
                });
            }
            _ => {
                let mut point = vec![4u8];
                point.extend(b64(jwk["x"].as_str().unwrap()));
                point.extend(b64(jwk["y"].as_str().unwrap()));
                let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
                group.bench_function("primitive", |b| {
                    b.iter(|| {
                        key.verify(black_box(message.as_bytes()), &signature)
                            .unwrap()
                    })
                });
            }
        }
        group.finish();
    }
}

fn authorizer_decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (alg, name) in [(Algorithm::EdDSA, "EdDSA"), (Algorithm::HS256, "HS256")] {
        let (state, _) = offline_state(alg);
        let token = state
            .tokens
            .issue_access("usr_bench", "bench@example.com", "admin", NOW)
            .unwrap()
            .token;
        let authorizer = Authorizer::new(state);
        // a realistic revocation list: a thousand logged-out tokens
        let mut set = RevocationSet::default();
        for i in 0..1000 {
            set.jtis.insert(format!("at_revoked_{i}"));
        }
        authorizer.seed_revocations(set, NOW);
        let event = json!({
            "type": "TOKEN",
            "authorizationToken": format!("Bearer {token}"),
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/whoami",
        });
        assert!(rt.block_on(authorizer.handle(&event, NOW)).is_ok());
        c.bench_function(&format!("authorizer/decision/{name}"), |b| {
            b.iter(|| {
                rt.block_on(authorizer.handle(black_box(&event), NOW))
                    .unwrap()
            })
        });
    }
}

fn login(c: &mut Criterion) {
    if std::env::var("PORTCULLIS_TEST_AWS_ENDPOINT").is_err() {
        eprintln!(
            "login benchmark skipped: run through `make bench` (it starts the local emulator)"
        );
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = rt.block_on(portcullis_tests::World::new(&[
        ("PASSWORD_HASH_PROFILE", "production"),
        ("LOGIN_RATE_LIMIT", "100000000/60"),
    ]));
    let email = portcullis_tests::unique_email("bench");
    let user = rt.block_on(world.user(&email, "Corr3ct-horse!", "user"));
    let creds = portcullis::login::Credentials {
        email: email.clone(),
        password: "Corr3ct-horse!".into(),
    };
    let mut group = c.benchmark_group("login");
    group.sample_size(20);
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| {
            assert!(
                world
                    .state
                    .hashing
                    .verify(black_box("Corr3ct-horse!"), &user.password_hash)
            )
        })
    });
    group.bench_function("handler", |b| {
        b.iter(|| {
            rt.block_on(portcullis::login::login(
                &world.state,
                black_box(&creds),
                "192.0.2.200",
                NOW,
            ))
            .unwrap()
        })
    });
    // One consistent GetItem to the emulator: login makes two such round trips one after the
    // other (the concurrent rate-limit count + user read, then the refresh-token write).
    group.bench_function("emulator_round_trip", |b| {
        b.iter(|| {
            rt.block_on(world.state.users.get(black_box(&email)))
                .unwrap()
                .unwrap()
        })
    });
    group.finish();
}

/// A DynamoDB that answers inside the process: the three requests of a successful login
/// (rate-limit UpdateItem, user GetItem, refresh-token PutItem) with fixed, valid replies. It
/// stands in for the network only here, to show what login costs beyond the hash and the
/// round trips; every store is tested against the emulator.
#[derive(Debug, Clone)]
struct InProcessDynamo {
    user_item: std::sync::Arc<String>,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for InProcessDynamo {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let body = match target.rsplit('.').next() {
            Some("UpdateItem") => r#"{"Attributes":{"hits":{"N":"1"}}}"#.to_owned(),
            Some("GetItem") => self.user_item.to_string(),
            _ => "{}".to_owned(),
        };
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap();
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(HttpResponse::new(
            status,
            body.into(),
        )))
    }
}

impl aws_smithy_runtime_api::client::http::HttpClient for InProcessDynamo {
    fn http_connector(
        &self,
        _: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
    }
}

/// An app state (EdDSA ring) whose DynamoDB answers in-process, every GetItem with `item`.
fn in_process_state(
    rt: &tokio::runtime::Runtime,
    config: portcullis::config::Config,
    item: &serde_json::Value,
) -> AppState {
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "b", "b", None, None, "bench",
            ))
            .http_client(InProcessDynamo {
                user_item: std::sync::Arc::new(item.to_string()),
            })
            .load(),
    );
    let jwk = KeyRing::generate_jwk(Algorithm::EdDSA).unwrap();
    let ring = KeyRing::from_secret(&json!({"keys": [jwk]}).to_string()).unwrap();
    AppState::new(config, AwsClients::from_sdk_config(&sdk), ring)
}

/// login's handler with every DynamoDB reply in-process vs one argon2id verify: what the code
/// adds to the hash, without the emulator's latency.
fn login_in_process(c: &mut Criterion) {
    let config = portcullis_tests::config(
        "bench-",
        &[
            ("PASSWORD_HASH_PROFILE", "production"),
            ("LOGIN_RATE_LIMIT", "100000000/60"),
        ],
    );
    let hashing = portcullis::password::HashingPolicy::for_profile(config.hash_profile);
    let hash = hashing.hash("Corr3ct-horse!").unwrap();
    let user_item = json!({"Item": {
        "email": {"S": "bench@example.com"},
        "id": {"S": "usr_bench"},
        "role": {"S": "user"},
        "passwordHash": {"S": hash.as_stored()},
        "failedAttempts": {"N": "0"},
        "disabled": {"BOOL": false},
        "createdAt": {"N": "1700000000"},
    }});
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = in_process_state(&rt, config, &user_item);
    let creds = portcullis::login::Credentials {
        email: "bench@example.com".into(),
        password: "Corr3ct-horse!".into(),
    };
    let mut group = c.benchmark_group("login_in_process");
    group.sample_size(20);
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| assert!(state.hashing.verify(black_box("Corr3ct-horse!"), &hash)))
    });
    group.bench_function("handler", |b| {
        b.iter(|| {
            rt.block_on(portcullis::login::login(
                &state,
                black_box(&creds),
                "192.0.2.200",
                NOW,
            ))
            .unwrap()
        })
    });
    group.finish();
}

/// The token endpoint (client credentials, Basic) with DynamoDB answered in-process (the
/// client GetItem; the rate counters' TransactWriteItems answered `{}`), against one bare
/// Ed25519 signature of the same size of message: what issuing costs beyond the signature.
fn oauth_token_in_process(c: &mut Criterion) {
    let config = portcullis_tests::config("bench-", &[]);
    let client = portcullis::store::clients::generate(
        "bench",
        vec!["client_credentials".into()],
        vec!["orders:read".into()],
        900,
        NOW - 10,
    );
    let r = &client.record;
    let item = json!({"Item": {
        "clientId": {"S": r.id}, "name": {"S": r.name}, "secretHash": {"S": r.secret_hash},
        "grants": {"L": [{"S": "client_credentials"}]}, "scopes": {"L": [{"S": "orders:read"}]},
        "tokenTtl": {"N": "900"}, "disabled": {"BOOL": false}, "createdAt": {"N": "1"},
        "lastUsedAt": {"N": NOW.to_string()},
    }});
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = in_process_state(&rt, config, &item);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            r.id,
            client.secret.as_deref().unwrap_or_default()
        ))
    );
    let request = || {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", basic.as_str())
            .body(lambda_http::Body::Text(
                "grant_type=client_credentials".into(),
            ))
            .unwrap()
    };
    let issued = state
        .tokens
        .issue_oauth(&r.id, &r.id, "orders:read", 900, NOW)
        .unwrap();
    let message = issued.token.rsplit_once('.').unwrap().0.to_owned();
    let mut group = c.benchmark_group("oauth_in_process");
    group.bench_function("ed25519_sign", |b| {
        let ring = state.tokens.ring();
        let key = ring.signer();
        b.iter(|| {
            jsonwebtoken::crypto::sign(black_box(message.as_bytes()), key.encoding(), key.alg)
        })
    });
    group.bench_function("token_endpoint", |b| {
        b.iter(|| {
            let resp = rt.block_on(portcullis::oauth::handle(&state, request(), NOW));
            assert_eq!(resp.status(), 200);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    verification,
    authorizer_decision,
    login,
    login_in_process,
    oauth_token_in_process
);
criterion_main!(benches);
