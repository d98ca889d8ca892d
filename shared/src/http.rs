//! HTTP plumbing shared by the HTTP functions: the ONE place errors become responses, body
//! parsing with the contract's 4xx codes, the client IP from the request context, and
//! response building.

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Error;

/// Largest request body we read (bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn base_response(status: u16) -> lambda_http::http::response::Builder {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
}

fn finish(builder: lambda_http::http::response::Builder, body: Body) -> Response<Body> {
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Text(
            r#"{"error":{"code":"INTERNAL_ERROR","message":"internal error"}}"#.into(),
        ));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// The contract's failure body and headers for `err`. 5xx detail goes to the log only.
pub fn error_response(err: &Error) -> Response<Body> {
    let status = err.status();
    if status >= 500 {
        tracing::error!(error = %err, code = err.code(), "request failed");
    }
    let mut body =
        serde_json::json!({"error": {"code": err.code(), "message": err.public_message()}});
    if let Error::MfaRequired { challenge } = err {
        body["error"]["challenge"] = serde_json::json!(challenge);
    }
    let mut builder = base_response(status);
    if let Some(seconds) = err.retry_after() {
        builder = builder.header(header::RETRY_AFTER, seconds.to_string());
    }
    match err {
        Error::MissingToken => builder = builder.header(header::WWW_AUTHENTICATE, "Bearer"),
        Error::InvalidToken | Error::TokenExpired => {
            builder = builder.header(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)
        }
        Error::InsufficientScope => {
            builder = builder.header(
                header::WWW_AUTHENTICATE,
                r#"Bearer error="insufficient_scope""#,
            )
        }
        Error::MethodNotAllowed { allow } => builder = builder.header(header::ALLOW, *allow),
        _ => {}
    }
    finish(builder, Body::Text(body.to_string()))
}

/// The request's path as the function was invoked with it (API Gateway's raw path, else the
/// URI's), without a trailing slash: multi-route functions match on its ending, so the same
/// code serves `/oauth/token` behind API Gateway and `/lambda-url/oauth/oauth/token` locally.
pub fn route_path(req: &Request) -> String {
    use lambda_http::RequestExt as _;
    let raw = req.raw_http_path();
    let path = if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    };
    path.trim_end_matches('/').to_owned()
}

/// `200 {"data": ...}`.
pub fn data_response(status: u16, data: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(&serde_json::json!({"data": data})) {
        Ok(text) => finish(base_response(status), Body::Text(text)),
        Err(e) => error_response(&Error::internal(format!("serialising response: {e}"))),
    }
}

/// A plain JSON document (no `data` envelope) with the given `Cache-Control`: for documents
/// other software reads, such as a JWK Set.
pub fn document_response(value: &serde_json::Value, cache_control: &str) -> Response<Body> {
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, cache_control)
        .header("x-content-type-options", "nosniff");
    finish(builder, Body::Text(value.to_string()))
}

/// `204` with no body.
pub fn no_content() -> Response<Body> {
    finish(
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::CACHE_CONTROL, "no-store"),
        Body::Empty,
    )
}

/// Turn a handler result into the response (the one mapping of `Error`).
pub fn respond(result: Result<Response<Body>, Error>) -> Response<Body> {
    result.unwrap_or_else(|err| error_response(&err))
}

pub fn require_method(req: &Request, method: Method, allow: &'static str) -> Result<(), Error> {
    if req.method() == method {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed { allow })
    }
}

fn is_json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = text.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
}

/// The body as a JSON object, or the contract's 413 / 415 / 400.
pub fn json_object(req: &Request) -> Result<Map<String, Value>, Error> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::validation("the body must be a JSON object"));
    }
    if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(Error::UnsupportedMediaType);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::validation("the body must be a JSON object")),
        Err(_) => Err(Error::validation("the body is not valid JSON")),
    }
}

/// A required string field. The message names the field, never its value.
pub fn required_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, Error> {
    match body.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(Error::validation(format!("field `{name}` is required"))),
        Some(_) => Err(Error::validation(format!(
            "field `{name}` must be a string"
        ))),
    }
}

/// An optional string field (absent or null is `None`).
pub fn optional_str<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::validation(format!(
            "field `{name}` must be a string"
        ))),
    }
}

/// The caller's IP as API Gateway or the function URL saw it — never a client-supplied
/// header such as `X-Forwarded-For`.
pub fn source_ip(req: &Request) -> String {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
        _ => None,
    };
    ip.filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or_else(|| "unknown".into())
}

/// A header's value as text, if present and printable.
pub fn header_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(resp: &Response<Body>) -> Value {
        serde_json::from_slice(resp.body().as_ref()).unwrap()
    }

    #[test]
    fn errors_map_to_the_contract() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::validation("x"), 400, "VALIDATION_ERROR"),
            (Error::InvalidCredentials, 401, "INVALID_CREDENTIALS"),
            (
                Error::AccountLocked { retry_after: 30 },
                423,
                "ACCOUNT_LOCKED",
            ),
            (Error::RateLimited { retry_after: 12 }, 429, "RATE_LIMITED"),
            (
                Error::PayloadTooLarge { limit: 1 },
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (Error::UnsupportedMediaType, 415, "UNSUPPORTED_MEDIA_TYPE"),
            (
                Error::MethodNotAllowed { allow: "POST" },
                405,
                "METHOD_NOT_ALLOWED",
            ),
            (
                Error::Unavailable("db down".into()),
                503,
                "SERVICE_UNAVAILABLE",
            ),
            (Error::internal("boom at line 3"), 500, "INTERNAL_ERROR"),
        ];
        for (err, status, code) in cases {
            let resp = error_response(&err);
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
            let body = body_of(&resp);
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].is_string());
            assert!(!body.to_string().contains("boom"));
            assert!(!body.to_string().contains("db down"));
        }
    }

    #[test]
    fn retry_after_and_www_authenticate_headers() {
        let resp = error_response(&Error::RateLimited { retry_after: 12 });
        assert_eq!(resp.headers()[header::RETRY_AFTER], "12");
        let resp = error_response(&Error::AccountLocked { retry_after: 0 });
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let resp = error_response(&Error::MissingToken);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let resp = error_response(&Error::TokenExpired);
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let resp = error_response(&Error::MethodNotAllowed { allow: "POST" });
        assert_eq!(resp.headers()[header::ALLOW], "POST");
    }

    #[test]
    fn content_types() {
        assert!(is_json_content_type(Some(&HeaderValue::from_static(
            "application/json"
        ))));
        assert!(is_json_content_type(Some(&HeaderValue::from_static(
            "Application/JSON; charset=utf-8"
        ))));
        assert!(!is_json_content_type(Some(&HeaderValue::from_static(
            "text/plain"
        ))));
        assert!(!is_json_content_type(Some(&HeaderValue::from_static(
            "application/jsonx"
        ))));
        assert!(!is_json_content_type(None));
    }
}
