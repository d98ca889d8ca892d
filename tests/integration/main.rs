//! The one integration-test binary. Needs the local stack: run through `make test`.

mod account;
mod api_keys;
mod attacks;
mod authorizer;
mod faults;
mod http_account;
mod http_browser;
mod http_keys;
mod http_login;
mod http_mfa;
mod http_oauth;
mod http_sessions;
mod http_web;
mod interop;
mod invoke;
mod login_flow;
mod mfa;
mod oauth;
mod properties;
mod sessions;
mod signing_keys;
mod stores;
mod web;
mod wycheproof;
