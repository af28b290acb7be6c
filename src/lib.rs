//! agentd: a self-hostable, multi-tenant conversational-agent server.
//!
//! The library holds everything; `main.rs` only parses the command line. Tests build the same
//! application through [`app::build_app`]. The module map and the layer rules are in
//! docs/architecture.md (a test keeps the top-level modules free of import cycles).

pub mod admin;
pub mod agent;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conversations;
pub mod cors;
pub mod domain;
pub mod http;
pub mod mailbox;
pub mod metrics;
pub mod rate_limit;
pub mod skills;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use app::{App, build_app};
pub use config::Settings;
pub use state::AppState;
