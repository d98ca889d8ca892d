//! The sample events in `events/` work with `cargo lambda invoke`.

use portcullis_tests::{cli, invoke_json};
use serde_json::Value;

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
    let response = invoke_json("login", "events/login.json");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["user"]["email"], "demo@portcullis.dev");
    assert_eq!(body["data"]["tokens"]["tokenType"], "Bearer");
}
