//! jwks: `GET /.well-known/jwks.json` (public keys only) and `/.well-known/openid-configuration`.
//! Wiring only: the logic is `portcullis::handlers::jwks`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis::handlers::serve(portcullis::handlers::jwks).await
}
