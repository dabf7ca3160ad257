//! unamentis-agent: an OpenTelemetry-native host agent for a local AI server
//! stack. See README.md and ../shared/DESIGN.md-derived docs in the repo.

pub mod activity;
pub mod compat;
pub mod config;
pub mod doctor;
pub mod export;
pub mod host;
pub mod instruments;
#[rustfmt::skip]
pub mod semconv;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod telemetry;
