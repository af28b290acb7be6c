//! Black-box tests: a real server over HTTP, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.
//! One test binary with modules, to keep link time down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod helpers;

mod admin_orgs;
mod agent;
mod api_keys;
mod architecture;
mod cancel;
mod cli;
mod connections;
mod contract;
mod conversations;
mod credentials;
mod dialogue;
mod errors;
mod faults;
mod generated_client;
mod layers;
mod mailbox;
mod migrations;
mod offline;
mod openapi;
mod ops;
mod playground;
mod rate_limits;
mod streaming;
mod text_input;
mod tokens;
mod webhooks;
