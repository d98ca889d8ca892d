//! The sample events in `events/` work with `cargo lambda invoke`.

use portcullis_tests::cli;
use serde_json::Value;

fn invoke(function: &str, event_file: &str) -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let port = std::env::var("PORTCULLIS_TEST_WATCH_PORT").unwrap();
    let out = std::process::Command::new("cargo")
        .current_dir(root)
        .args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ])
        .args([
            "--data-file",
            &format!("events/{event_file}"),
            "--output-format",
            "json",
        ])
        .output()
        .expect("cargo lambda invoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn events_login_json_logs_the_demo_user_in() {
    // The demo user of events/login.json (created here if this stack does not have it yet).
    let out = cli(
        &[
            "user",
            "create",
            "--email",
            "demo@portcullis.dev",
            "--role",
            "admin",
        ],
        Some("Demo-passw0rd!\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "{stderr}"
    );
    let response = invoke("login", "login.json");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["user"]["email"], "demo@portcullis.dev");
    assert_eq!(body["data"]["tokens"]["tokenType"], "Bearer");
}
