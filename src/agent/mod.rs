//! The agent: models (providers), tools, and the turn loop that joins them. Independent of
//! HTTP: a turn can run from a handler, a test or the CLI.

pub mod model;
pub mod state;
