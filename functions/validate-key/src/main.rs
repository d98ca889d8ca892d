//! validate-key: `x-api-key: ak_...` -> the key's id, name, scopes and expiry.
//! Wiring only: the logic is `portcullis::handlers::validate_key`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve(portcullis::handlers::validate_key).await
}
