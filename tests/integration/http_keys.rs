//! validate-key, whoami and the authorizer through `cargo lambda watch` and `cargo lambda invoke`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use portcullis::apikeys::rfc3339;
use portcullis::store::ApiKeyStore;
use portcullis::store::api_keys::{generate, key_id};
use portcullis_tests::{
    RequestCounter, cli, clients, function_url, https_client, remember_secret, unique_email,
    watch_env,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse!";
const STAGE_WILDCARD: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*";

// ---------------------------------------------------------------------------------------
// helpers

/// Run the CLI, insist on success, and return its standard output.
fn cli_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = cli(args, stdin);
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `portcullis --json key create ...`: the parsed document.
fn create_key(name: &str, scopes: &str, expires_in: Option<&str>) -> Value {
    let mut args = vec![
        "--json", "key", "create", "--name", name, "--scopes", scopes,
    ];
    if let Some(e) = expires_in {
        args.extend(["--expires-in", e]);
    }
    let doc: Value = serde_json::from_str(&cli_ok(&args, None)).unwrap();
    let key = doc["key"].as_str().unwrap();
    remember_secret(key);
    assert_eq!(key_id(key), doc["id"].as_str(), "{doc}");
    doc
}

fn create_user(email: &str, role: &str) -> String {
    cli_ok(
        &["user", "create", "--email", email, "--role", role],
        Some(&format!("{PASSWORD}\n")),
    )
    .trim()
    .to_owned()
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

async fn validate(method: reqwest::Method, key: Option<&str>) -> Reply {
    let mut req = https_client().request(method, function_url("validate-key"));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    send(req).await
}

fn assert_error(reply: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(
        (reply.status, reply.json()),
        (status, json!({"error": {"code": code, "message": message}})),
        "{}",
        reply.text
    );
    assert_eq!(reply.headers["content-type"], "application/json");
}

fn assert_invalid_key(reply: &Reply) {
    assert_error(reply, 401, "INVALID_API_KEY", "the API key is invalid");
}

/// Log in through the login function URL; the access token.
async fn login(email: &str) -> String {
    let reply = send(
        https_client()
            .post(function_url("login"))
            .header("content-type", "application/json")
            .body(json!({"email": email, "password": PASSWORD}).to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["data"]["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A temporary copy of an event, removed when dropped.
struct TempEvent(PathBuf);

impl TempEvent {
    fn new(event: &Value) -> Self {
        let path = std::env::temp_dir().join(format!(
            "portcullis-http-keys-{}.json",
            portcullis::ids::new_id("ev")
        ));
        std::fs::write(&path, serde_json::to_vec_pretty(event).unwrap()).unwrap();
        Self(path)
    }
}

impl Drop for TempEvent {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn sample(file: &str) -> Value {
    let text = std::fs::read_to_string(root().join("events").join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `cargo lambda invoke FUNCTION --data-file PATH --output-format json`.
async fn invoke(function: &str, data_file: &std::path::Path) -> std::process::Output {
    tokio::process::Command::from(portcullis_tests::cargo_lambda_invoke(function, data_file))
        .output()
        .await
        .expect("cargo lambda invoke")
}

/// An invocation that succeeded: its JSON answer.
fn answer(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "invoke failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Whether an invocation is the function error `Unauthorized` (what REST APIs turn into a 401).
/// `cargo lambda invoke` shows a function error's message (not its type) and exits non-zero.
fn is_unauthorized(out: &std::process::Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    !out.status.success() && out.stdout.is_empty() && stderr.starts_with("Error: Unauthorized\n")
}

fn assert_unauthorized(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        is_unauthorized(out),
        "expected the function error Unauthorized; status {:?}, stdout {:?}, stderr {stderr:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("× Unauthorized\n"), "{stderr:?}");
}

/// The raw Lambda Invoke API answer of `cargo lambda watch` (what `cargo lambda invoke`
/// reads): it shows the function error's type as well as its message.
async fn raw_invoke(function: &str, event: &Value) -> Reply {
    let port = std::env::var("PORTCULLIS_TEST_WATCH_PORT").unwrap();
    send(
        https_client()
            .post(format!(
                "http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations"
            ))
            .body(event.to_string()),
    )
    .await
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Token,
    Request,
    Http,
}

const KINDS: [Kind; 3] = [Kind::Token, Kind::Request, Kind::Http];

#[derive(Debug, Clone)]
enum Cred<'a> {
    Bearer(&'a str),
    Key(&'a str),
}

/// The sample event of `kind`, carrying `cred` instead of the sample's fake token.
fn event(kind: Kind, cred: &Cred) -> Value {
    let mut ev = sample(match kind {
        Kind::Token => "authorizer-token.json",
        Kind::Request => "authorizer-request.json",
        Kind::Http => "authorizer-http.json",
    });
    let obj = ev.as_object_mut().unwrap();
    if kind == Kind::Token {
        obj["authorizationToken"] = match cred {
            Cred::Bearer(t) => json!(format!("Bearer {t}")),
            Cred::Key(k) => json!(k),
        };
        return ev;
    }
    for field in ["headers", "multiValueHeaders"] {
        if let Some(map) = obj.get_mut(field).and_then(Value::as_object_mut) {
            map.retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
        }
    }
    let (name, value) = match cred {
        Cred::Bearer(t) => ("authorization", format!("Bearer {t}")),
        Cred::Key(k) => ("x-api-key", (*k).to_owned()),
    };
    obj["headers"]
        .as_object_mut()
        .unwrap()
        .insert(name.into(), json!(value));
    if kind == Kind::Http {
        obj["identitySource"] = json!([value]);
    } else if let Some(map) = obj
        .get_mut("multiValueHeaders")
        .and_then(Value::as_object_mut)
    {
        map.insert(name.into(), json!([value]));
    }
    ev
}

/// The Allow of a principal without a second factor. The stack runs with the route rule
/// `GET /admin/*=mfa` (scripts/with-stack.sh), so IAM answers also carry its Deny.
fn allowed(kind: Kind, principal_id: &str, context: &Value) -> Value {
    match kind {
        Kind::Http => json!({"isAuthorized": true, "context": context}),
        Kind::Token | Kind::Request => json!({
            "principalId": principal_id,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": STAGE_WILDCARD,
                }, {
                    "Action": "execute-api:Invoke",
                    "Effect": "Deny",
                    "Resource": STAGE_WILDCARD.replace("/*", "/GET/admin/*"),
                }],
            },
            "context": context,
        }),
    }
}

async fn invoke_authorizer(kind: Kind, cred: &Cred<'_>) -> std::process::Output {
    let file = TempEvent::new(&event(kind, cred));
    invoke("authorizer", &file.0).await
}

// ---------------------------------------------------------------------------------------
// 1. validate-key over HTTP

#[tokio::test]
async fn validate_key_answers_a_cli_key_with_exactly_the_contract_body() {
    let doc = create_key("hk-ok", "orders:read,orders:write", None);
    let (id, key) = (doc["id"].as_str().unwrap(), doc["key"].as_str().unwrap());
    assert_eq!(doc["name"], "hk-ok");
    assert_eq!(doc["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(doc["expiresAt"], Value::Null);
    let expected = json!({"data": {"valid": true, "key": {
        "id": id,
        "name": "hk-ok",
        "scopes": ["orders:read", "orders:write"],
        "expiresAt": null,
    }}});
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let reply = validate(method.clone(), Some(key)).await;
        assert_eq!(
            (reply.status, reply.json()),
            (200, expected.clone()),
            "{method}"
        );
        assert_eq!(reply.headers["content-type"], "application/json");
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert!(!reply.text.contains(&key[3 + 22 + 1..]), "never the secret");
    }
}

#[tokio::test]
async fn validate_key_reports_the_expiry_as_rfc3339() {
    let before = portcullis::state::now();
    let doc = create_key("hk-exp90", "", Some("90d"));
    let after = portcullis::state::now();
    let expires_at = doc["expiresAt"].as_str().unwrap().to_owned();
    let candidates: Vec<String> = (before..=after).map(|t| rfc3339(t + 90 * 86_400)).collect();
    assert!(
        candidates.contains(&expires_at),
        "{expires_at} not in {candidates:?}"
    );
    // RFC 3339, UTC, whole seconds: 2027-01-15T08:00:00Z
    let b = expires_at.as_bytes();
    assert_eq!(b.len(), 20, "{expires_at}");
    for (i, c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{expires_at}"),
            10 => assert_eq!(*c, b'T', "{expires_at}"),
            13 | 16 => assert_eq!(*c, b':', "{expires_at}"),
            19 => assert_eq!(*c, b'Z', "{expires_at}"),
            _ => assert!(c.is_ascii_digit(), "{expires_at}"),
        }
    }
    let reply = validate(reqwest::Method::POST, doc["key"].as_str()).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            200,
            json!({"data": {"valid": true, "key": {
                "id": doc["id"],
                "name": "hk-exp90",
                "scopes": [],
                "expiresAt": expires_at,
            }}})
        ),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn validate_key_refuses_missing_garbage_and_wrong_secret() {
    let reply = validate(reqwest::Method::POST, None).await;
    assert_error(
        &reply,
        401,
        "MISSING_API_KEY",
        "an API key is required in the x-api-key header",
    );
    let reply = validate(reqwest::Method::POST, Some("   ")).await;
    assert_error(
        &reply,
        401,
        "MISSING_API_KEY",
        "an API key is required in the x-api-key header",
    );

    let doc = create_key("hk-bad", "read", None);
    let key = doc["key"].as_str().unwrap();
    let other = generate("other", vec![], 0, None).key;
    // same id, a different (well-formed) secret
    let wrong_secret = format!("{}{}", &key[..3 + 22 + 1], &other[3 + 22 + 1..]);
    assert_eq!(key_id(&wrong_secret), key_id(key));
    let unknown_id = other.clone();
    for bad in [
        "garbage",
        "ak_",
        "Bearer abc.def.ghi",
        &key[..key.len() - 1],
        &format!("{key}x"),
        &wrong_secret,
        &unknown_id,
    ] {
        let reply = validate(reqwest::Method::POST, Some(bad)).await;
        assert_invalid_key(&reply);
    }
    // the real key still works afterwards
    assert_eq!(validate(reqwest::Method::POST, Some(key)).await.status, 200);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    let doc = create_key("hk-rev", "read", None);
    let (id, key) = (doc["id"].as_str().unwrap(), doc["key"].as_str().unwrap());
    assert_eq!(validate(reqwest::Method::POST, Some(key)).await.status, 200);
    assert_eq!(
        cli_ok(&["key", "revoke", id], None),
        format!("revoked {id}\n")
    );
    assert_invalid_key(&validate(reqwest::Method::POST, Some(key)).await);
    assert_invalid_key(&validate(reqwest::Method::GET, Some(key)).await);
    // revoking an unknown key fails with a one-line message
    let out = cli(&["key", "revoke", "nosuchkeyAAAAAAAAAAAAA"], None);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "portcullis: no key nosuchkeyAAAAAAAAAAAAA\n"
    );
}

#[tokio::test]
async fn an_expired_key_is_refused_as_expired() {
    let now = portcullis::state::now();
    let new = generate("hk-expired", vec!["read".into()], now - 100, Some(now - 1));
    let store = ApiKeyStore::new(
        clients(&RequestCounter::default()).await.dynamodb,
        watch_env()["API_KEYS_TABLE"].clone(),
    );
    store.put(&new.record).await.unwrap();
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let reply = validate(method, Some(&new.key)).await;
        assert_error(&reply, 401, "API_KEY_EXPIRED", "the API key has expired");
    }
    // a wrong secret for the expired key's id is still just invalid (nothing leaks)
    let other = generate("x", vec![], 0, None).key;
    let wrong = format!("{}{}", &new.key[..26], &other[26..]);
    assert_invalid_key(&validate(reqwest::Method::POST, Some(&wrong)).await);
}

#[tokio::test]
async fn validate_key_allows_only_get_and_post() {
    let doc = create_key("hk-405", "", None);
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let reply = validate(method.clone(), doc["key"].as_str()).await;
        assert_error(
            &reply,
            405,
            "METHOD_NOT_ALLOWED",
            "method not allowed; use GET, POST",
        );
        assert_eq!(reply.headers["allow"], "GET, POST", "{method}");
    }
}

#[tokio::test]
async fn key_list_shows_ids_and_never_a_key() {
    let a = create_key("hk-list-a", "read", None);
    let b = create_key("hk-list-b", "read,write", Some("12h"));
    let revoked = create_key("hk-list-c", "", None);
    cli_ok(&["key", "revoke", revoked["id"].as_str().unwrap()], None);

    let text = cli_ok(&["key", "list"], None);
    for doc in [&a, &b, &revoked] {
        let key = doc["key"].as_str().unwrap();
        assert!(!text.contains(key), "key list printed a key");
        assert!(!text.contains(&key[26..]), "key list printed a secret");
    }
    for line in text.lines() {
        let first = line.split('\t').next().unwrap();
        assert_eq!(first.len(), 22, "line does not start with an id: {line:?}");
        assert!(
            line.split_whitespace().all(|w| key_id(w).is_none()),
            "a key in {line:?}"
        );
    }
    let line = |id: &Value| {
        let id = id.as_str().unwrap();
        text.lines()
            .find(|l| l.starts_with(&format!("{id}\t")))
            .unwrap_or_else(|| panic!("{id} not listed:\n{text}"))
            .to_owned()
    };
    assert_eq!(
        line(&a["id"]),
        format!(
            "{}\thk-list-a\tread\tnever\tactive",
            a["id"].as_str().unwrap()
        )
    );
    assert_eq!(
        line(&b["id"]),
        format!(
            "{}\thk-list-b\tread,write\t{}\tactive",
            b["id"].as_str().unwrap(),
            b["expiresAt"].as_str().unwrap()
        )
    );
    assert_eq!(
        line(&revoked["id"]),
        format!(
            "{}\thk-list-c\t-\tnever\trevoked",
            revoked["id"].as_str().unwrap()
        )
    );

    let json_text = cli_ok(&["key", "list", "--json"], None);
    let list: Value = serde_json::from_str(&json_text).unwrap();
    let items = list.as_array().expect("an array");
    for item in items {
        assert!(item.get("key").is_none(), "{item}");
        assert!(item["id"].is_string(), "{item}");
    }
    for doc in [&a, &b, &revoked] {
        assert!(!json_text.contains(doc["key"].as_str().unwrap()));
        let item = items
            .iter()
            .find(|i| i["id"] == doc["id"])
            .unwrap_or_else(|| panic!("{} not in the JSON list", doc["id"]));
        assert_eq!(item["name"], doc["name"]);
        assert_eq!(item["scopes"], doc["scopes"]);
        assert_eq!(item["expiresAt"], doc["expiresAt"]);
        assert_eq!(item["revoked"], json!(doc["id"] == revoked["id"]));
    }
}

// ---------------------------------------------------------------------------------------
// 2. whoami

#[tokio::test]
async fn whoami_without_an_authorizer_refuses_rather_than_guesses() {
    let email = unique_email("hk-who");
    create_user(&email, "admin");
    let access = login(&email).await;
    // Not even a perfectly valid bearer token makes it answer: only the authorizer's context does.
    for auth in [None, Some(format!("Bearer {access}"))] {
        let mut req = https_client().get(function_url("whoami"));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let reply = send(req).await;
        assert_error(&reply, 401, "MISSING_TOKEN", "a bearer token is required");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn whoami_invoked_with_the_sample_event_echoes_its_context() {
    let out = invoke("whoami", &root().join("events/whoami.json")).await;
    let response = answer(&out);
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let context = sample("whoami.json")["requestContext"]["authorizer"]["lambda"].clone();
    assert_eq!(
        context,
        json!({
            "principalId": "usr_example",
            "userId": "usr_example",
            "email": "demo@portcullis.dev",
            "role": "admin",
            "scopes": "",
            "authType": "jwt",
        })
    );
    assert_eq!(body, json!({"data": {"principal": context}}));
}

// ---------------------------------------------------------------------------------------
// 3. the authorizer through `cargo lambda invoke`

#[tokio::test]
async fn authorizer_refuses_the_fake_sample_tokens_exactly() {
    for file in ["authorizer-token.json", "authorizer-request.json"] {
        let out = invoke("authorizer", &root().join("events").join(file)).await;
        assert_unauthorized(&out);
        // the function error itself: type and message both `Unauthorized`
        let raw = raw_invoke("authorizer", &sample(file)).await;
        assert_eq!(
            raw.json(),
            json!({"errorType": "Unauthorized", "errorMessage": "Unauthorized"}),
            "{file}"
        );
    }
    let out = invoke("authorizer", &root().join("events/authorizer-http.json")).await;
    assert_eq!(answer(&out), json!({"isAuthorized": false}));
}

#[tokio::test]
async fn authorizer_allows_a_real_access_token_in_every_event_kind() {
    let email = unique_email("hk-az");
    let user_id = create_user(&email, "admin");
    let access = login(&email).await;
    let context = json!({
        "principalId": user_id,
        "userId": user_id,
        "email": email,
        "role": "admin",
        "scopes": "",
        "authType": "jwt",
        "mfa": "false",
    });
    for kind in KINDS {
        let out = invoke_authorizer(kind, &Cred::Bearer(&access)).await;
        assert_eq!(answer(&out), allowed(kind, &user_id, &context), "{kind:?}");
    }
    // a tampered signature is refused in every kind
    let at = access.rfind('.').unwrap() + 5;
    let flipped = if &access[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &access[..at], &access[at + 1..]);
    for kind in KINDS {
        let out = invoke_authorizer(kind, &Cred::Bearer(&tampered)).await;
        if kind == Kind::Http {
            assert_eq!(answer(&out), json!({"isAuthorized": false}));
        } else {
            assert_unauthorized(&out);
        }
    }
}

#[tokio::test]
async fn authorizer_allows_an_api_key_in_every_event_kind() {
    let doc = create_key("hk-az-key", "orders:read,orders:write", None);
    let (id, key) = (doc["id"].as_str().unwrap(), doc["key"].as_str().unwrap());
    let context = json!({
        "principalId": id,
        "keyId": id,
        "keyName": "hk-az-key",
        "scopes": "orders:read orders:write",
        "authType": "apiKey",
    });
    for kind in KINDS {
        let out = invoke_authorizer(kind, &Cred::Key(key)).await;
        assert_eq!(answer(&out), allowed(kind, id, &context), "{kind:?}");
    }
    // a well-formed key that was never issued is refused in every kind
    let unknown = generate("never-stored", vec![], 0, None).key;
    for kind in KINDS {
        let out = invoke_authorizer(kind, &Cred::Key(&unknown)).await;
        if kind == Kind::Http {
            assert_eq!(answer(&out), json!({"isAuthorized": false}));
        } else {
            assert_unauthorized(&out);
        }
    }
}

#[tokio::test]
async fn after_logout_the_authorizer_refuses_the_access_token_within_the_refresh_interval() {
    let email = unique_email("hk-lo");
    let user_id = create_user(&email, "user");
    let access = login(&email).await;
    // allowed first, so the authorizer holds a revocation set without this logout
    for kind in KINDS {
        let out = invoke_authorizer(kind, &Cred::Bearer(&access)).await;
        assert_eq!(
            answer(&out)["context"]["principalId"],
            json!(user_id),
            "{kind:?}"
        );
    }
    let reply = send(
        https_client()
            .post(function_url("logout"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {access}"))
            .body(json!({"allSessions": true}).to_string()),
    )
    .await;
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    let logged_out = Instant::now();
    // The default REVOCATION_REFRESH_SECONDS is 5: every container reloads within that.
    let deadline = logged_out + Duration::from_secs(15);
    for kind in KINDS {
        let file = TempEvent::new(&event(kind, &Cred::Bearer(&access)));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let out = invoke("authorizer", &file.0).await;
            let refused = if kind == Kind::Http {
                out.status.success()
                    && serde_json::from_slice::<Value>(&out.stdout).ok()
                        == Some(json!({"isAuthorized": false}))
            } else {
                is_unauthorized(&out)
            };
            if refused {
                break;
            }
            // while not yet refused, it is still the plain allow (nothing else)
            assert_eq!(answer(&out)["context"]["principalId"], json!(user_id));
            assert!(
                Instant::now() < deadline,
                "{kind:?}: still allowed {:?} after logout ({attempts} attempts)",
                logged_out.elapsed()
            );
        }
    }
}
