//! unamentis-agent: an OpenTelemetry-native host agent for a local AI server
//! stack. See README.md, docs/ARCHITECTURE.md and docs/FORMATS.md.

// Outside tests nothing may panic on external data: a failure is a value
// (absent, source down), and an invariant that holds is an `expect` under
// an `allow` that says why.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod activity;
pub mod compat;
pub mod config;
pub mod counters;
pub mod doctor;
pub mod export;
pub mod families;
pub mod host;
pub mod patterns;
pub mod pipeline;
pub mod point;
#[rustfmt::skip]
pub mod semconv;
pub mod prometheus;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod telemetry;
pub mod url;
