//! Shared test support: real OTLP receivers (gRPC via opentelemetry-proto's
//! tonic server, HTTP/protobuf via a minimal HTTP/1.1 server) and a handle
//! on the agent binary.
#![allow(dead_code)] // each test file uses a different part

pub mod agent;
pub mod fake_nvml;
pub mod fake_ollama;
pub mod fixtures;
pub mod host_run;
pub mod http;
pub mod otlp_receiver;
pub mod prom;
pub mod services;
pub mod snapshot_json;
pub mod synthetic_host;
pub mod tcp;
