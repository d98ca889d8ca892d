//! Cookie mode (`REFRESH_COOKIE=on`): the refresh token also travels as an `HttpOnly; Secure;
//! SameSite=Strict` cookie scoped to the auth routes, with a double-submit CSRF token (a
//! readable cookie the page echoes in `x-csrf-token`, compared in constant time).

use cookie::{Cookie, SameSite};
use lambda_http::Request;
use lambda_http::http::header;
use subtle::ConstantTimeEq as _;

use crate::error::Error;

pub const REFRESH_COOKIE: &str = "__Secure-portcullis-refresh";
pub const CSRF_COOKIE: &str = "__Secure-portcullis-csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request (`Cookie` headers; API Gateway v2 folds the
/// event's `cookies` array into one).
pub fn request_cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|text| Cookie::split_parse(text.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= crate::token::MAX_TOKEN_BYTES)
}

/// The double-submit check for requests that authenticate by cookie: the `x-csrf-token`
/// header must equal the CSRF cookie (constant-time). A cross-site page can send the
/// cookies but can neither read them nor set the header.
pub fn check_csrf(req: &Request) -> Result<(), Error> {
    let header = req
        .headers()
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes().to_vec());
    let cookie = request_cookie(req, CSRF_COOKIE);
    match (header, cookie) {
        (Some(h), Some(c)) if c.len() >= 16 && bool::from(h.as_slice().ct_eq(c.as_bytes())) => {
            Ok(())
        }
        _ => Err(Error::CsrfRejected),
    }
}

/// `Set-Cookie` values that hand a new refresh token (and a new CSRF token) to the browser.
pub fn set_session_cookies(refresh_token: &str, max_age: i64, path: &str) -> Vec<String> {
    let refresh = Cookie::build((REFRESH_COOKIE, refresh_token.to_owned()))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path(path.to_owned())
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    let csrf = Cookie::build((CSRF_COOKIE, crate::ids::new_id("csrf")))
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    vec![refresh.to_string(), csrf.to_string()]
}

/// `Set-Cookie` values that remove both cookies (logout).
pub fn clear_session_cookies(path: &str) -> Vec<String> {
    let refresh = Cookie::build((REFRESH_COOKIE, ""))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path(path.to_owned())
        .removal()
        .build();
    let csrf = Cookie::build((CSRF_COOKIE, ""))
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .removal()
        .build();
    vec![refresh.to_string(), csrf.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn request(cookie: Option<&str>, csrf: Option<&str>) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/");
        if let Some(c) = cookie {
            builder = builder.header(header::COOKIE, c);
        }
        if let Some(h) = csrf {
            builder = builder.header(CSRF_HEADER, h);
        }
        builder.body(Body::Empty).unwrap()
    }

    #[test]
    fn set_cookies_have_every_attribute() {
        let cookies = set_session_cookies("a.b.c", 600, "/auth");
        assert!(cookies[0].starts_with("__Secure-portcullis-refresh=a.b.c;"));
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/auth",
            "Max-Age=600",
        ] {
            assert!(cookies[0].contains(attr), "{} lacks {attr}", cookies[0]);
        }
        assert!(cookies[1].starts_with("__Secure-portcullis-csrf=csrf_"));
        assert!(
            !cookies[1].contains("HttpOnly"),
            "the page must read the CSRF token"
        );
        let cleared = clear_session_cookies("/auth");
        assert!(cleared[0].contains("Max-Age=0") && cleared[1].contains("Max-Age=0"));
    }

    #[test]
    fn cookies_are_read_from_the_header() {
        let req = request(Some("a=1; __Secure-portcullis-refresh=x.y.z; b=2"), None);
        assert_eq!(
            request_cookie(&req, REFRESH_COOKIE).as_deref(),
            Some("x.y.z")
        );
        assert_eq!(request_cookie(&req, CSRF_COOKIE), None);
        assert_eq!(request_cookie(&request(None, None), REFRESH_COOKIE), None);
    }

    #[test]
    fn csrf_needs_matching_header_and_cookie() {
        let token = "csrf_0123456789abcdefghij";
        let cookie = format!("{CSRF_COOKIE}={token}");
        assert!(check_csrf(&request(Some(&cookie), Some(token))).is_ok());
        for (c, h) in [
            (Some(cookie.as_str()), None),
            (None, Some(token)),
            (Some(cookie.as_str()), Some("csrf_0123456789abcdefghiX")),
            (Some(cookie.as_str()), Some("csrf_0123")),
            (Some("__Secure-portcullis-csrf=short"), Some("short")),
        ] {
            assert!(
                matches!(check_csrf(&request(c, h)), Err(Error::CsrfRejected)),
                "{c:?} {h:?}"
            );
        }
    }
}
