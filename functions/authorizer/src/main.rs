//! authorizer: the API Gateway Lambda authorizer (REST TOKEN/REQUEST, HTTP API 2.0).
//! Wiring only: the logic is `portcullis::authorizer`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::authorizer::serve().await
}
