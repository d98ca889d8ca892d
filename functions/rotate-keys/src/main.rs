//! rotate-keys: the Secrets Manager rotation function for the signing keys.
//! Wiring only: the logic is `portcullis::rotation`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::rotation::serve().await
}
