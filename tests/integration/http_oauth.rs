//! OAuth 2.0 over real HTTP: the oauth function URL under `cargo lambda watch`, the metadata
//! from the jwks function, and two third-party clients — Python Authlib and Node
//! openid-client (panva) — that discover the server from its metadata, get a client
//! credentials token, call whoami through the authorizer (scripts/gateway.py plays API
//! Gateway), introspect it and revoke it. Failure cases assert the exact RFC error and
//! status and that nothing was stored.

use std::path::PathBuf;
use std::process::Command;

use portcullis_tests::{cli, function_url, https_client, remember_secret, watch_env};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `portcullis --json client create ...` through the CLI: (id, secret).
fn create_client(name: &str, scopes: &str) -> (String, String) {
    let out = cli(
        &[
            "--json", "client", "create", "--name", name, "--scopes", scopes,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (
        doc["clientId"].as_str().unwrap().to_owned(),
        doc["clientSecret"].as_str().unwrap().to_owned(),
    );
    remember_secret(&secret);
    assert_eq!(doc["grants"], json!(["client_credentials"]));
    assert_eq!(doc["redirectUris"], json!([]));
    (id, secret)
}

fn endpoint(name: &str) -> String {
    format!("{}oauth/{name}", function_url("oauth"))
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body: if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        },
    }
}

fn form(req: reqwest::RequestBuilder, body: &str) -> reqwest::RequestBuilder {
    req.header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
}

async fn metadata(doc: &str) -> Value {
    let reply =
        send(https_client().get(format!("{}.well-known/{doc}", function_url("jwks")))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn metadata_documents_agree_and_point_at_the_endpoints() {
    let env = watch_env();
    let oauth = metadata("oauth-authorization-server").await;
    let oidc = metadata("openid-configuration").await;
    let base = env["OAUTH_ENDPOINT_BASE"].clone();
    assert_eq!(oauth["issuer"], env["JWT_ISSUER"].as_str());
    assert_eq!(oauth["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(oauth["revocation_endpoint"], format!("{base}/oauth/revoke"));
    assert_eq!(
        oauth["introspection_endpoint"],
        format!("{base}/oauth/introspect")
    );
    assert_eq!(
        oauth["grant_types_supported"],
        json!(["client_credentials", "authorization_code", "refresh_token"])
    );
    assert_eq!(
        oauth["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        oauth["authorization_endpoint"],
        format!("{}/oauth/authorize", env["WEB_BASE_URL"])
    );
    assert_eq!(oauth["userinfo_endpoint"], format!("{base}/oauth/userinfo"));
    assert_eq!(oauth["response_types_supported"], json!(["code"]));
    assert_eq!(oauth["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        oauth["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    assert!(
        oidc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("openid"))
    );
    // every OAuth member of the RFC 8414 document stands the same in the OpenID one
    for (name, value) in oauth.as_object().unwrap() {
        assert_eq!(&oidc[name], value, "{name}");
    }
    assert!(oidc["id_token_signing_alg_values_supported"].is_array());
}

#[tokio::test]
async fn the_token_endpoint_over_http_answers_as_rfc_6749_says() {
    let (id, secret) = create_client("http-partner", "orders:read,orders:write");
    let ok = send(form(
        https_client()
            .post(endpoint("token"))
            .basic_auth(&id, Some(&secret)),
        "grant_type=client_credentials&scope=orders:write",
    ))
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.headers["cache-control"], "no-store");
    assert_eq!(ok.headers["content-type"], "application/json");
    let token = ok.body["access_token"].as_str().unwrap().to_owned();
    remember_secret(&token);
    assert_eq!(
        ok.body,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 900, "scope": "orders:write"})
    );

    let wrong = format!("grant_type=client_credentials&client_id={id}&client_secret=cs_wrong");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "wrong secret, basic",
            form(
                https_client()
                    .post(endpoint("token"))
                    .basic_auth(&id, Some("cs_wrong")),
                "grant_type=client_credentials",
            ),
            401,
            "invalid_client",
        ),
        (
            "wrong secret, post",
            form(https_client().post(endpoint("token")), &wrong),
            401,
            "invalid_client",
        ),
        (
            "scope outside",
            form(
                https_client()
                    .post(endpoint("token"))
                    .basic_auth(&id, Some(&secret)),
                "grant_type=client_credentials&scope=admin",
            ),
            400,
            "invalid_scope",
        ),
        (
            "unsupported grant",
            form(
                https_client()
                    .post(endpoint("token"))
                    .basic_auth(&id, Some(&secret)),
                "grant_type=password&username=a&password=b",
            ),
            400,
            "unsupported_grant_type",
        ),
        (
            "missing grant",
            form(
                https_client()
                    .post(endpoint("token"))
                    .basic_auth(&id, Some(&secret)),
                "",
            ),
            400,
            "invalid_request",
        ),
        (
            "duplicated parameter",
            form(
                https_client()
                    .post(endpoint("token"))
                    .basic_auth(&id, Some(&secret)),
                "grant_type=client_credentials&scope=a&scope=b",
            ),
            400,
            "invalid_request",
        ),
        (
            "JSON body",
            https_client()
                .post(endpoint("token"))
                .basic_auth(&id, Some(&secret))
                .header("content-type", "application/json")
                .body(r#"{"grant_type":"client_credentials"}"#),
            400,
            "invalid_request",
        ),
        (
            "GET",
            https_client()
                .get(endpoint("token"))
                .basic_auth(&id, Some(&secret)),
            405,
            "invalid_request",
        ),
    ];
    for (what, req, status, error) in cases {
        let reply = send(req).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (status, Some(error)),
            "{what}: {}",
            reply.body
        );
        assert_eq!(reply.body.as_object().unwrap().len(), 2, "{what}");
        assert_eq!(reply.headers["cache-control"], "no-store", "{what}");
        if status == 401 {
            assert_eq!(
                reply.headers["www-authenticate"], r#"Basic realm="portcullis""#,
                "{what}"
            );
        }
    }
    // a disabled client: refused at once, and its token no longer introspects as active
    let out = cli(&["client", "disable", &id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = send(form(
        https_client()
            .post(endpoint("token"))
            .basic_auth(&id, Some(&secret)),
        "grant_type=client_credentials",
    ))
    .await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // the listing shows it disabled, and never a secret
    let out = cli(&["--json", "client", "list"], None);
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(!listed.contains(&secret));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let me = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clientId"] == id.as_str())
        .unwrap();
    assert_eq!(me["disabled"], true);
}

#[tokio::test]
async fn rotate_secret_over_the_cli_replaces_the_secret() {
    let (id, old) = create_client("rotating-partner", "a");
    let out = cli(&["--json", "client", "rotate-secret", &id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = doc["clientSecret"].as_str().unwrap().to_owned();
    remember_secret(&new);
    assert_eq!(doc["clientId"], id.as_str());
    let with = |secret: &str| {
        form(
            https_client()
                .post(endpoint("token"))
                .basic_auth(&id, Some(secret)),
            "grant_type=client_credentials",
        )
    };
    assert_eq!(
        send(with(&old)).await.status,
        401,
        "overlap 0: the old one stops at once"
    );
    assert_eq!(send(with(&new)).await.status, 200);
    let missing = cli(&["client", "rotate-secret", "cl_nobody"], None);
    assert!(!missing.status.success());
}

/// Run a third-party client (`node` or the venv's `python`) and return its JSON report.
fn peer(lang: &str, id: &str, secret: &str, method: &str, scope: &str) -> Value {
    let env = watch_env();
    let gateway = std::env::var("PORTCULLIS_TEST_GATEWAY_URL").expect("the stack's gateway");
    let (program, script) = match lang {
        "node" => (
            "node".to_owned(),
            root().join("tests/interop/oauth_client.mjs"),
        ),
        _ => (
            root().join(".venv/bin/python").display().to_string(),
            root().join("tests/interop/oauth_client.py"),
        ),
    };
    let out = Command::new(program)
        .arg(script)
        .args([
            env["JWT_ISSUER"].as_str(),
            id,
            secret,
            method,
            scope,
            &gateway,
        ])
        .output()
        .expect("run the OAuth client");
    assert!(
        out.status.success(),
        "{lang} {method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn authlib_and_openid_client_run_the_whole_flow_with_both_auth_methods() {
    let env = watch_env();
    for (lang, method) in [
        ("python", "client_secret_basic"),
        ("python", "client_secret_post"),
        ("node", "client_secret_basic"),
        ("node", "client_secret_post"),
    ] {
        let (id, secret) = create_client(&format!("{lang}-{method}"), "orders:read,orders:write");
        let report = peer(lang, &id, &secret, method, "orders:read");
        let what = format!("{lang} {method}: {report}");
        assert_eq!(
            report["metadata_issuer"],
            env["JWT_ISSUER"].as_str(),
            "{what}"
        );
        assert_eq!(
            report["token_endpoint"],
            format!("{}/oauth/token", env["OAUTH_ENDPOINT_BASE"]),
            "{what}"
        );
        assert!(
            report["token_type"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("bearer"),
            "{what}"
        );
        assert_eq!(report["expires_in"], 900, "{what}");
        assert_eq!(report["scope"], "orders:read", "{what}");
        assert_eq!(report["whoami_status"], 200, "{what}");
        assert_eq!(
            report["whoami"]["data"]["principal"],
            json!({"principalId": format!("client:{id}"), "clientId": id,
                   "scopes": "orders:read", "authType": "oauth"}),
            "{what}"
        );
        let intro = &report["introspection"];
        assert_eq!(intro["active"], true, "{what}");
        assert_eq!(intro["client_id"], id.as_str(), "{what}");
        assert_eq!(intro["scope"], "orders:read", "{what}");
        assert_eq!(report["revoke_status"], 200, "{what}");
        assert_eq!(
            report["introspection_after"],
            json!({"active": false}),
            "{what}"
        );
    }
}
