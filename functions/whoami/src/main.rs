//! whoami: an example protected route that echoes the principal the authorizer passed on.
//! Wiring only: the logic is `portcullis::handlers::whoami`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve_stateless(portcullis::handlers::whoami).await
}
