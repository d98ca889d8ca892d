//! oauth: the OAuth 2.0 token, revocation and introspection endpoints (RFC 6749, 7009, 7662).
//! Wiring only: the logic is `portcullis::oauth`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve_with(
        portcullis::oauth::handle,
        portcullis::oauth::unavailable_response,
    )
    .await
}
