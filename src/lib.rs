//! agentd: a self-hostable, multi-tenant conversational-agent server.
//!
//! The library holds everything; `main.rs` only parses the command line. Tests build the same
//! application through [`app::build_app`].

pub mod admin;
pub mod agent;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cors;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod orgs;
pub mod rate_limit;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use app::{App, AppState, build_app};
pub use config::Settings;
