//! Portcullis: the library behind every Portcullis Lambda function and the admin CLI.
//!
//! `config` + `state` are built once per cold start; `handlers` are the per-request
//! entrypoints; `login` (and friends) hold the use cases; `store` talks to DynamoDB;
//! `token`, `keys` and `password` are the security primitives; `error` + `http` are the one
//! place failures become responses.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account;
pub mod admin;
pub mod apikeys;
pub mod authorizer;
pub mod breached;
pub mod config;
pub mod cookies;
pub mod error;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod keys;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod password;
pub mod rotation;
pub mod rules;
pub mod session;
pub mod state;
pub mod store;
pub mod token;
pub mod totp;
pub mod web;

pub use error::Error;
