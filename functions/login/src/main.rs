//! login: email + password -> access JWT + rotating refresh token. Wiring only; the logic is
//! `portcullis::handlers::login`.

use lambda_http::{Error, Request, run, service_fn, tracing};
use portcullis::state::{AppState, now};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let state = AppState::from_env().await?;
    let state = &state;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(portcullis::handlers::login(state, req, now()).await)
    }))
    .await
}
