//! The one integration-test binary. Needs the local stack: run through `make test`.

mod api_keys;
mod authorizer;
mod http_login;
mod http_sessions;
mod invoke;
mod login_flow;
mod sessions;
mod stores;
