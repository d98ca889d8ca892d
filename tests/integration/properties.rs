//! Bad input, no panic (issue 6): property tests over everything that parses what a caller
//! sends — authorizer events, HTTP events and bodies, tokens, API keys and emails. They run
//! in-process over an app state whose AWS clients point at a closed port (127.0.0.1:9, no
//! retries), so a path that reaches the store gets a fast connection refusal: 503.
//!
//! Each property runs a bounded number of cases (see `CASES`) with failure persistence off;
//! a failure prints the shrunk input.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use lambda_http::{Body, Request};
use portcullis::authorizer::{Authorizer, Failure};
use portcullis::keys::KeyRing;
use portcullis::state::{AppState, AwsClients};
use portcullis::store::RevocationSet;
use portcullis::token::TokenUse;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;

/// Cases per property: the whole file stays well under a minute in a debug build.
const CASES: u32 = 256;

const STAGE_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod";

// ---------------------------------------------------------------------------------------
// fixture

struct Fixture {
    rt: tokio::runtime::Runtime,
    /// One app state per algorithm, cookie mode on; the first is HS256.
    states: Vec<AppState>,
    /// A valid access token of each state.
    tokens: Vec<String>,
    /// A valid refresh token of the HS256 state.
    refresh: String,
    /// `AUTHORIZER_RESPONSE=simple` and `=iam`, over the HS256 state.
    authorizers: Vec<Authorizer>,
}

const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::EdDSA, Algorithm::ES256];

fn ring(alg: Algorithm) -> KeyRing {
    let jwk = KeyRing::generate_jwk(alg).unwrap();
    KeyRing::from_secret(&json!({"keys": [jwk]}).to_string()).unwrap()
}

fn offline_state(
    rt: &tokio::runtime::Runtime,
    ring: KeyRing,
    overrides: &[(&str, &str)],
) -> AppState {
    let mut all = vec![
        ("REFRESH_COOKIE", "on"),
        ("REVOCATION_REFRESH_SECONDS", "300"),
    ];
    all.extend_from_slice(overrides);
    let config = portcullis_tests::config("props-", &all);
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_config::Region::new("us-east-1"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_millis(500))
                    .operation_timeout(std::time::Duration::from_secs(2))
                    .build(),
            )
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "p",
                "p",
                None,
                None,
                "properties",
            ))
            .load(),
    );
    AppState::new(config, AwsClients::from_sdk_config(&sdk), ring)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let rings: Vec<KeyRing> = ALGORITHMS.iter().map(|alg| ring(*alg)).collect();
        let states: Vec<AppState> = rings
            .iter()
            .map(|r| offline_state(&rt, r.clone(), &[]))
            .collect();
        let tokens = states
            .iter()
            .map(|s| {
                s.tokens
                    .issue_access("usr_props", "props@example.com", "admin", NOW)
                    .unwrap()
                    .token
            })
            .collect();
        let refresh = states[0]
            .tokens
            .issue_refresh("usr_props", "props@example.com", "fam_props", NOW)
            .unwrap()
            .token;
        let authorizers = ["simple", "iam"]
            .iter()
            .map(|mode| {
                // the same key as states[0], so its token is valid here
                let state = offline_state(&rt, rings[0].clone(), &[("AUTHORIZER_RESPONSE", mode)]);
                let authorizer = Authorizer::new(state);
                let mut set = RevocationSet::default();
                set.jtis.insert("at_revoked".into());
                authorizer.seed_revocations(set, NOW);
                authorizer
            })
            .collect();
        Fixture {
            rt,
            states,
            tokens,
            refresh,
            authorizers,
        }
    })
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// strategies

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Any text, with a bias towards the characters parsers trip over.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[ -~]{0,40}",
        "[\\x00-\\x20\"'\\\\.:;=,{}\\[\\]%+/_-]{0,20}",
        "\\PC{0,200}",
    ]
}

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "version", "type", "authorizationToken", "methodArn", "routeArn", "headers",
            "identitySource", "requestContext", "authorization", "Authorization", "x-api-key",
            "X-API-Key", "email", "password", "refreshToken", "allSessions", "keys",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::String),
        prop::sample::select(vec![
            "2.0", "1.0", "TOKEN", "REQUEST", "Bearer ", "ak_", "GET", "POST"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key_name(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A change to a valid token.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte of one segment (may make the text non-UTF-8: replaced lossily).
    FlipByte {
        segment: usize,
        index: usize,
        xor: u8,
    },
    Truncate {
        at: usize,
    },
    /// Put a copy of segment `from` in place of, or in front of, segment `to`.
    Duplicate {
        from: usize,
        to: usize,
        insert: bool,
    },
    /// Insert a character that base64url never uses.
    Insert {
        segment: usize,
        index: usize,
        ch: char,
    },
    Swap {
        a: usize,
        b: usize,
    },
    /// Replace one segment with arbitrary base64url of arbitrary bytes.
    Replace {
        segment: usize,
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let seg = 0usize..3;
    prop_oneof![
        (seg.clone(), any::<usize>(), 1u8..=255).prop_map(|(segment, index, xor)| {
            Mutation::FlipByte {
                segment,
                index,
                xor,
            }
        }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (seg.clone(), seg.clone(), any::<bool>())
            .prop_map(|(from, to, insert)| Mutation::Duplicate { from, to, insert }),
        (
            seg.clone(),
            any::<usize>(),
            prop_oneof![
                prop::sample::select(vec![
                    '+', '/', '=', '.', ' ', '\t', '\n', '%', '!', '\0', '~', '€', 'ß'
                ]),
                any::<char>().prop_filter("not base64url", |c| !(c.is_ascii_alphanumeric()
                    || *c == '-'
                    || *c == '_')),
            ]
        )
            .prop_map(|(segment, index, ch)| Mutation::Insert { segment, index, ch }),
        (seg.clone(), seg.clone()).prop_map(|(a, b)| Mutation::Swap { a, b }),
        (seg, vec(any::<u8>(), 0..80))
            .prop_map(|(segment, bytes)| Mutation::Replace { segment, bytes }),
    ]
}

fn apply(token: &str, m: &Mutation) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    match m {
        Mutation::FlipByte {
            segment,
            index,
            xor,
        } => {
            let mut bytes = parts[*segment].clone().into_bytes();
            if !bytes.is_empty() {
                let i = index % bytes.len();
                bytes[i] ^= xor;
            }
            parts[*segment] = String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::Truncate { at } => {
            let mut cut = at % token.len();
            while !token.is_char_boundary(cut) {
                cut -= 1;
            }
            return token[..cut].to_owned();
        }
        Mutation::Duplicate { from, to, insert } => {
            let copy = parts[*from].clone();
            if *insert {
                parts.insert(*to, copy);
            } else {
                parts[*to] = copy;
            }
        }
        Mutation::Insert { segment, index, ch } => {
            let s = &mut parts[*segment];
            let mut at = index % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.insert(at, *ch);
        }
        Mutation::Swap { a, b } => parts.swap(*a, *b),
        Mutation::Replace { segment, bytes } => parts[*segment] = b64(bytes),
    }
    parts.join(".")
}

/// A token-shaped string: arbitrary header and claims JSON, a garbage signature.
fn forged_token() -> impl Strategy<Value = String> {
    (
        json_value(),
        json_value(),
        vec(any::<u8>(), 0..72),
        any::<bool>(),
    )
        .prop_map(|(mut header, claims, sig, real_kid)| {
            if real_kid && let Some(obj) = header.as_object_mut() {
                let ring = fixture().states[0].tokens.ring();
                obj.insert("kid".into(), ring.signer().kid.clone().into());
                obj.entry("alg").or_insert_with(|| "HS256".into());
            }
            format!(
                "{}.{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes()),
                b64(&sig)
            )
        })
}

/// What a caller might put where a credential goes.
fn credential() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        text().prop_map(|t| format!("Bearer {t}")),
        (0usize..3, mutation())
            .prop_map(|(i, m)| format!("Bearer {}", apply(&fixture().tokens[i], &m))),
        forged_token().prop_map(|t| format!("Bearer {t}")),
        "ak_[A-Za-z0-9_-]{60,70}",
        "ak_\\PC{0,80}",
        Just(()).prop_map(|_| format!("Bearer {}", fixture().tokens[0])),
        Just(()).prop_map(|_| fixture().refresh.clone()),
        Just(()).prop_map(|_| fixture().tokens[0].clone()),
    ]
}

// ---------------------------------------------------------------------------------------
// (1a) authorizer events

fn check_authorizer(
    authorizer: &Authorizer,
    event: &Value,
) -> Result<Option<Value>, TestCaseError> {
    let answer = fixture().rt.block_on(authorizer.handle(event, NOW));
    match answer {
        Ok(v) => {
            prop_assert!(v.is_object(), "{v}");
            Ok(Some(v))
        }
        Err(f) => {
            prop_assert!(
                f == Failure::UNAUTHORIZED || f == Failure::UNAVAILABLE,
                "{f:?}"
            );
            Ok(None)
        }
    }
}

fn allowed(answer: &Option<Value>) -> bool {
    match answer {
        None => false,
        Some(v) => v["isAuthorized"] == true || v.get("policyDocument").is_some(),
    }
}

#[test]
fn authorizer_survives_arbitrary_json_and_strings() {
    run(
        CASES,
        (json_value(), text(), any::<bool>()),
        |(value, s, iam)| {
            let authorizer = &fixture().authorizers[usize::from(iam)];
            check_authorizer(authorizer, &value)?;
            check_authorizer(authorizer, &Value::String(s.clone()))?;
            if let Ok(parsed) = serde_json::from_str::<Value>(&s) {
                check_authorizer(authorizer, &parsed)?;
            }
            Ok(())
        },
    );
}

#[test]
fn authorizer_survives_arbitrary_credentials_in_well_formed_events() {
    let strategy = (
        0usize..3,
        credential(),
        prop_oneof![
            Just(format!("{STAGE_ARN}/GET/whoami")),
            text(),
            text().prop_map(|t| format!("arn:{t}")),
            text().prop_map(|t| format!("{STAGE_ARN}/{t}")),
        ],
        btree_map(
            prop_oneof![
                prop::sample::select(vec![
                    "authorization",
                    "Authorization",
                    "AUTHORIZATION",
                    "x-api-key",
                    "X-Api-Key"
                ])
                .prop_map(str::to_owned),
                text(),
            ],
            prop_oneof![3 => credential().prop_map(Value::String), 1 => json_value()],
            0..4,
        ),
        any::<bool>(),
    );
    run(CASES, strategy, |(kind, cred, arn, headers, iam)| {
        let authorizer = &fixture().authorizers[usize::from(iam)];
        let event = match kind {
            0 => json!({"type": "TOKEN", "authorizationToken": cred, "methodArn": arn}),
            1 => {
                let mut h: serde_json::Map<String, Value> = headers.into_iter().collect();
                h.insert("authorization".into(), cred.into());
                json!({"type": "REQUEST", "methodArn": arn, "headers": h})
            }
            _ => json!({
                "version": "2.0", "type": "REQUEST", "routeArn": arn,
                "headers": headers.into_iter().chain([("Authorization".to_owned(), Value::String(cred))]).collect::<serde_json::Map<_, _>>(),
            }),
        };
        check_authorizer(authorizer, &event)?;
        Ok(())
    });
}

#[test]
fn authorizer_never_allows_a_mutated_token() {
    // Not vacuous: the token itself is allowed in both response modes.
    let fx = fixture();
    for authorizer in &fx.authorizers {
        let event = json!({
            "type": "TOKEN",
            "authorizationToken": format!("Bearer {}", fx.tokens[0]),
            "methodArn": format!("{STAGE_ARN}/GET/whoami"),
        });
        assert!(allowed(
            &fx.rt.block_on(authorizer.handle(&event, NOW)).ok()
        ));
    }
    run(
        CASES,
        (mutation(), any::<bool>(), 0usize..3),
        |(m, iam, kind)| {
            let fx = fixture();
            let authorizer = &fx.authorizers[usize::from(iam)];
            let token = apply(&fx.tokens[0], &m);
            // Whitespace around a bearer token is not part of it (the header value is trimmed).
            prop_assume!(token.trim() != fx.tokens[0]);
            let arn = format!("{STAGE_ARN}/GET/whoami");
            let event = match kind {
                0 => {
                    json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": arn})
                }
                1 => {
                    json!({"type": "REQUEST", "methodArn": arn, "headers": {"Authorization": format!("Bearer {token}")}})
                }
                _ => {
                    json!({"version": "2.0", "routeArn": arn, "headers": {"authorization": format!("Bearer {token}")}})
                }
            };
            let answer = check_authorizer(authorizer, &event)?;
            prop_assert!(
                !allowed(&answer),
                "allowed a mutated token: {token} -> {answer:?}"
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// (1b) HTTP events and handlers

/// Statuses of the contract (500 excluded: a bad request is never our bug).
const CONTRACT_STATUSES: [u16; 12] = [200, 204, 400, 401, 403, 404, 405, 413, 415, 423, 429, 503];

const HANDLERS: [&str; 6] = [
    "login",
    "refresh",
    "logout",
    "validate-key",
    "whoami",
    "jwks",
];

fn template(handler: &str) -> Value {
    let text = match handler {
        "login" => include_str!("../../events/login.json"),
        "refresh" => include_str!("../../events/refresh.json"),
        "logout" => include_str!("../../events/logout.json"),
        "validate-key" => include_str!("../../events/validate-key.json"),
        "whoami" => include_str!("../../events/whoami.json"),
        _ => include_str!("../../events/jwks.json"),
    };
    serde_json::from_str(text).unwrap()
}

#[derive(Debug, Clone)]
enum BodyInput {
    None,
    Text(String),
    Base64(Vec<u8>),
    Json(Value),
    Fields(BTreeMap<String, Value>),
    Login { email: String, password: String },
}

fn body_input() -> impl Strategy<Value = BodyInput> {
    let field = prop_oneof![
        prop::sample::select(vec!["email", "password", "refreshToken", "allSessions"])
            .prop_map(str::to_owned),
        text(),
    ];
    let field_value = prop_oneof![
        credential().prop_map(Value::String),
        "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}".prop_map(Value::String),
        json_value(),
    ];
    prop_oneof![
        1 => Just(BodyInput::None),
        1 => text().prop_map(BodyInput::Text),
        1 => vec(any::<u8>(), 0..200).prop_map(BodyInput::Base64),
        1 => json_value().prop_map(BodyInput::Json),
        2 => btree_map(field, field_value, 0..5).prop_map(BodyInput::Fields),
        2 => (
            prop_oneof!["[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}", text()],
            prop_oneof!["[ -~]{8,40}", text()]
        )
            .prop_map(|(email, password)| BodyInput::Login { email, password }),
    ]
}

#[derive(Debug, Clone)]
struct HttpInput {
    handler: usize,
    /// Which fixture state (key algorithm) serves it.
    state: usize,
    /// `None`: the sample event's own method / path.
    method: Option<String>,
    path: Option<String>,
    headers: BTreeMap<String, String>,
    cookies: Option<Vec<String>>,
    body: BodyInput,
    source_ip: Option<String>,
    authorizer: Option<BTreeMap<String, Value>>,
}

fn http_input() -> impl Strategy<Value = HttpInput> {
    let header_name = prop_oneof![
        prop::sample::select(vec![
            "authorization",
            "x-api-key",
            "cookie",
            "content-type",
            "x-csrf-token",
            "origin",
            "content-length",
            "x-forwarded-for",
            "Authorization",
            "Content-Type",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,20}",
    ];
    // Any text a header can carry (AWS delivers nothing else): no control characters.
    let header_value = prop_oneof![
        credential().prop_map(|c| c.replace(|c: char| c.is_control() && c != '\t', "")),
        prop::sample::select(vec![
            "application/json",
            "Application/JSON; charset=utf-8",
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
            ";",
            "application/json;;;",
        ])
        .prop_map(str::to_owned),
        text().prop_map(|t| t.replace(|c: char| c.is_control() && c != '\t', "")),
    ];
    let cookie = prop_oneof![
        credential().prop_map(|c| format!("__Secure-portcullis-refresh={c}")),
        text().prop_map(|c| format!("__Secure-portcullis-csrf={c}")),
        text(),
    ];
    (
        (0..HANDLERS.len(), 0..ALGORITHMS.len()),
        proptest::option::weighted(
            0.4,
            prop_oneof![
                prop::sample::select(vec![
                    "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"
                ])
                .prop_map(str::to_owned),
                "[A-Za-z!#$%&'*+.^_`|~-]{1,10}",
            ],
        ),
        proptest::option::weighted(
            0.5,
            prop_oneof![
                prop::sample::select(vec![
                    "/",
                    "/.well-known/jwks.json",
                    "/.well-known/openid-configuration",
                    "/prod/.well-known/jwks.json/",
                    "/whoami",
                ])
                .prop_map(str::to_owned),
                "/[A-Za-z0-9._~/-]{0,40}",
            ],
        ),
        btree_map(header_name, header_value, 0..6),
        proptest::option::of(vec(cookie, 0..4)),
        body_input(),
        proptest::option::of(text()),
        proptest::option::of(btree_map(key_name(), json_value(), 0..6)),
    )
        .prop_map(
            |((handler, state), method, path, headers, cookies, body, source_ip, authorizer)| {
                HttpInput {
                    handler,
                    state,
                    method,
                    path,
                    headers,
                    cookies,
                    body,
                    source_ip,
                    authorizer,
                }
            },
        )
}

/// The function URL / HTTP API event for `input`, from the handler's sample event.
fn http_event(input: &HttpInput) -> Value {
    let mut event = template(HANDLERS[input.handler]);
    if let Some(path) = &input.path {
        event["rawPath"] = path.clone().into();
        event["requestContext"]["http"]["path"] = path.clone().into();
    }
    if let Some(method) = &input.method {
        event["requestContext"]["http"]["method"] = method.clone().into();
    }
    let headers = event["headers"].as_object_mut().unwrap();
    for (k, v) in &input.headers {
        // `host` feeds lambda_http's URL building, which is given a valid one by AWS.
        if !k.eq_ignore_ascii_case("host") {
            headers.insert(k.clone(), v.clone().into());
        }
    }
    if let Some(cookies) = &input.cookies {
        event["cookies"] = json!(cookies);
    }
    if let Some(ip) = &input.source_ip {
        event["requestContext"]["http"]["sourceIp"] = ip.clone().into();
    }
    if let Some(auth) = &input.authorizer {
        event["requestContext"]["authorizer"] = json!({"lambda": auth});
    }
    let (body, base64) = match &input.body {
        BodyInput::None => (Value::Null, false),
        BodyInput::Text(t) => (t.clone().into(), false),
        // AWS always sends valid base64 when it says so (lambda_http panics otherwise).
        BodyInput::Base64(bytes) => (
            base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into(),
            true,
        ),
        BodyInput::Json(v) => (v.to_string().into(), false),
        BodyInput::Login { email, password } => (
            json!({"email": email, "password": password})
                .to_string()
                .into(),
            false,
        ),
        BodyInput::Fields(m) => (
            Value::Object(m.clone().into_iter().collect())
                .to_string()
                .into(),
            false,
        ),
    };
    event["body"] = body;
    event["isBase64Encoded"] = base64.into();
    event
}

fn call_handler(handler: &str, state: usize, req: Request) -> lambda_http::Response<Body> {
    let fx = fixture();
    let state = &fx.states[state];
    fx.rt.block_on(async {
        match handler {
            "login" => portcullis::handlers::login(state, req, NOW).await,
            "refresh" => portcullis::handlers::refresh(state, req, NOW).await,
            "logout" => portcullis::handlers::logout(state, req, NOW).await,
            "validate-key" => portcullis::handlers::validate_key(state, req, NOW).await,
            "whoami" => portcullis::handlers::whoami(req),
            _ => portcullis::handlers::jwks(state, req, NOW).await,
        }
    })
}

fn check_response(handler: &str, resp: &lambda_http::Response<Body>) -> Result<(), TestCaseError> {
    let status = resp.status().as_u16();
    let body: &[u8] = resp.body().as_ref();
    prop_assert!(
        CONTRACT_STATUSES.contains(&status),
        "{handler}: status {status}: {}",
        String::from_utf8_lossy(body)
    );
    if status == 204 {
        prop_assert!(body.is_empty());
        return Ok(());
    }
    prop_assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("{handler}: not JSON ({e})")))?;
    if status >= 400 {
        let code = doc["error"]["code"].as_str();
        prop_assert!(
            code.is_some() && doc["error"]["message"].is_string(),
            "{handler}: {doc}"
        );
        if status == 503 {
            prop_assert_eq!(code, Some("SERVICE_UNAVAILABLE"));
        }
    }
    Ok(())
}

#[test]
fn http_handlers_answer_the_contract_for_arbitrary_requests() {
    run(CASES, http_input(), |input| {
        let event = http_event(&input);
        let handler = HANDLERS[input.handler];
        // Events AWS could never send (an unknown method, say) may fail to parse: fine.
        let Ok(req) = lambda_http::request::from_str(&event.to_string()) else {
            return Ok(());
        };
        check_response(handler, &call_handler(handler, input.state, req))
    });
}

#[test]
fn http_event_parsing_survives_arbitrary_text_and_json() {
    run(
        CASES,
        (text(), json_value(), 0..HANDLERS.len(), key_name()),
        |(s, value, h, field)| {
            let _ = lambda_http::request::from_str(&s);
            let _ = lambda_http::request::from_str(&value.to_string());
            // A sample event with one top-level field replaced by any JSON value.
            let mut event = template(HANDLERS[h]);
            if !matches!(
                field.as_str(),
                "headers" | "requestContext" | "body" | "isBase64Encoded" | "rawPath"
            ) {
                event[field.as_str()] = value;
            }
            if let Ok(req) = lambda_http::request::from_str(&event.to_string()) {
                check_response(HANDLERS[h], &call_handler(HANDLERS[h], h % 3, req))?;
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// (2) body parsing

fn request_with(body: Vec<u8>, content_type: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder().method("POST");
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Body::Binary(body)).unwrap()
}

#[test]
fn json_object_takes_any_bytes() {
    let strategy = (
        prop_oneof![
            vec(any::<u8>(), 0..300),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            text().prop_map(String::into_bytes),
            (any::<u8>(), 16 * 1024 - 2..16 * 1024 + 3usize).prop_map(|(b, n)| vec![b; n]),
        ],
        proptest::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("APPLICATION/json ; charset=utf-8".to_owned()),
            "[ -~]{0,30}",
        ]),
    );
    run(CASES, strategy, |(bytes, ct)| {
        let req = request_with(bytes.clone(), ct.as_deref());
        match portcullis::http::json_object(&req) {
            Ok(map) => {
                prop_assert_eq!(
                    serde_json::from_slice::<Value>(&bytes).ok(),
                    Some(Value::Object(map))
                );
                prop_assert!(bytes.len() <= portcullis::http::MAX_BODY_BYTES);
            }
            Err(e) => prop_assert!(matches!(e.status(), 400 | 413 | 415), "{e:?}"),
        }
        Ok(())
    });
}

/// The OAuth endpoints (issue 12): any method, path ending, content type, Authorization
/// header and form body gets an RFC error object with one of the endpoints' statuses — never
/// a token (the store is unreachable, so nothing authenticates), never a panic.
#[test]
fn oauth_endpoints_answer_rfc_errors_for_arbitrary_requests() {
    let form_field = prop_oneof![
        prop::sample::select(vec![
            "grant_type",
            "client_id",
            "client_secret",
            "scope",
            "token",
            "token_type_hint",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ];
    let form_value = prop_oneof![
        prop::sample::select(vec!["client_credentials", "password", "cl_x", "cs_y", ""])
            .prop_map(str::to_owned),
        text(),
    ];
    let body = prop_oneof![
        vec((form_field, form_value), 0..6)
            .prop_map(|pairs| { form_urlencoded_pairs(&pairs).into_bytes() }),
        vec(any::<u8>(), 0..200),
        (any::<u8>(), 16 * 1024 - 2..16 * 1024 + 3usize).prop_map(|(b, n)| vec![b; n]),
    ];
    let authorization = proptest::option::of(prop_oneof![
        text().prop_map(|t| format!("Basic {t}")),
        (text(), text()).prop_map(|(a, b)| format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{a}:{b}"))
        )),
        text(),
    ]);
    let strategy = (
        prop::sample::select(vec!["POST", "GET", "PUT", "DELETE"]),
        prop::sample::select(vec![
            "/oauth/token",
            "/oauth/revoke",
            "/oauth/introspect",
            "/",
            "/x/oauth/token/",
        ]),
        proptest::option::of(prop_oneof![
            Just("application/x-www-form-urlencoded".to_owned()),
            Just("application/json".to_owned()),
            "[ -~]{0,30}",
        ]),
        authorization,
        body,
    );
    run(CASES, strategy, |(method, path, ct, auth, body)| {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        if let Some(ct) = &ct {
            builder = builder.header("content-type", ct.as_str());
        }
        if let Some(auth) = auth
            .as_deref()
            .filter(|a| lambda_http::http::HeaderValue::from_str(a).is_ok())
        {
            builder = builder.header("authorization", auth);
        }
        let req = builder.body(Body::Binary(body)).unwrap();
        let fx = fixture();
        let resp = fx
            .rt
            .block_on(portcullis::oauth::handle(&fx.states[0], req, NOW));
        let status = resp.status().as_u16();
        prop_assert!(
            matches!(status, 400 | 401 | 404 | 405 | 413 | 503),
            "status {status}"
        );
        let doc: Value = serde_json::from_slice(resp.body().as_ref())
            .map_err(|e| TestCaseError::fail(format!("not JSON ({e})")))?;
        prop_assert!(
            doc["error"].is_string() && doc["error_description"].is_string(),
            "{doc}"
        );
        prop_assert_eq!(doc.as_object().map(|o| o.len()), Some(2));
        prop_assert!(doc.get("access_token").is_none());
        Ok(())
    });
}

fn form_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

// ---------------------------------------------------------------------------------------
// (3) token verification

#[test]
fn verify_refuses_arbitrary_strings() {
    run(
        CASES,
        (
            prop_oneof![text(), forged_token(), "[A-Za-z0-9_.-]{0,400}"],
            0usize..3,
            any::<bool>(),
        ),
        |(s, i, refresh)| {
            let state = &fixture().states[i];
            let usage = if refresh {
                TokenUse::Refresh
            } else {
                TokenUse::Access
            };
            prop_assert!(
                state.tokens.verify(&s, usage, NOW).is_err(),
                "accepted {s:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn verify_refuses_every_mutation_of_a_valid_token() {
    run(CASES * 2, (0usize..3, mutation()), |(i, m)| {
        let fx = fixture();
        let token = &fx.tokens[i];
        prop_assert!(
            fx.states[i]
                .tokens
                .verify(token, TokenUse::Access, NOW)
                .is_ok()
        );
        let mutated = apply(token, &m);
        prop_assume!(&mutated != token);
        prop_assert!(
            fx.states[i]
                .tokens
                .verify(&mutated, TokenUse::Access, NOW)
                .is_err(),
            "{:?} accepted after {m:?}: {mutated}",
            ALGORITHMS[i]
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// (4) API key ids and emails

#[test]
fn key_id_takes_any_string() {
    let strategy = prop_oneof![
        text(),
        "ak_\\PC{0,80}",
        "ak_[A-Za-z0-9_-]{64,68}",
        "ak_[A-Za-z0-9-]{22}_[A-Za-z0-9_é-]{43}",
        "[a-z]{2}_[A-Za-z0-9-]{22}_[A-Za-z0-9_-]{43}",
    ];
    run(CASES, strategy, |key| {
        if let Some(id) = portcullis::store::api_keys::key_id(&key) {
            prop_assert_eq!(id.len(), 22);
            prop_assert!(key.starts_with("ak_") && key.is_ascii() && key.len() == 3 + 22 + 1 + 43);
            prop_assert_eq!(&key[3..25], id);
        }
        Ok(())
    });
    let real = portcullis::store::api_keys::generate("p", vec![], NOW, None);
    assert_eq!(
        portcullis::store::api_keys::key_id(&real.key),
        Some(real.record.id.as_str())
    );
}

#[test]
fn normalise_email_takes_any_string() {
    let strategy = prop_oneof![
        text(),
        "\\PC{0,20}@\\PC{0,20}",
        "[ \\t]{0,2}[A-Za-z0-9.+_-]{1,70}@[A-Za-zÀ-ÿ0-9.-]{1,20}\\.[A-Za-z]{2,4}[ \\t]{0,2}",
        "[a-z]{1,3}@[a-z]{1,3}\\.[a-z]{2}".prop_map(|s| s.repeat(30)),
    ];
    run(CASES, strategy, |raw| {
        if let Ok(email) = portcullis::login::normalise_email(&raw) {
            prop_assert!(email.len() <= portcullis::login::MAX_EMAIL_BYTES);
            prop_assert!(email.contains('@') && !email.chars().any(char::is_whitespace));
            prop_assert_eq!(email.clone(), raw.trim().to_lowercase());
            // idempotent: the stored form normalises to itself
            prop_assert_eq!(portcullis::login::normalise_email(&email).ok(), Some(email));
        }
        Ok(())
    });
}
