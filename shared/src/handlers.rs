//! Entrypoints: event -> domain call -> response. Each function's `main` only wires one of
//! these to the runtime.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

use crate::error::Error;
use crate::http::{self, data_response, json_object, require_method, required_str, respond};
use crate::login::{self, Credentials};
use crate::state::AppState;

/// `POST` login (function URL or `POST /auth/login`).
pub async fn login(state: &AppState, req: Request, now: i64) -> Response<Body> {
    respond(login_inner(state, &req, now).await)
}

async fn login_inner(state: &AppState, req: &Request, now: i64) -> Result<Response<Body>, Error> {
    require_method(req, Method::POST, "POST")?;
    let body = json_object(req)?;
    let credentials = Credentials {
        email: required_str(&body, "email")?.to_owned(),
        password: required_str(&body, "password")?.to_owned(),
    };
    let out = login::login(state, &credentials, &http::source_ip(req), now).await?;
    Ok(data_response(200, &out))
}
