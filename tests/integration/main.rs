//! The one integration-test binary. Needs the local stack: run through `make test`.

mod http_login;
mod invoke;
mod login_flow;
mod sessions;
mod stores;
