//! Wiring only: the logic is `portcullis::handlers::refresh`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve(portcullis::handlers::refresh).await
}
