//! account: sign-up with email verification, password change and password reset by mail.
//! Wiring only: the logic is `portcullis::account`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve(portcullis::account::handle).await
}
