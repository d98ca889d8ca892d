//! web: browser sign-in with server-side sessions and the OAuth 2.0 authorization endpoint
//! with its consent page (server-rendered HTML). Wiring only: the logic is `portcullis::web`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve_with(
        portcullis::web::handle,
        portcullis::web::unavailable_response,
    )
    .await
}
