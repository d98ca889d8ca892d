//! mfa: the TOTP second factor — enrol, confirm, remove — and the second step of login.
//! Wiring only: the logic is `portcullis::mfa`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve(portcullis::mfa::handle).await
}
