//! End-to-end test support: a mock provider that behaves like NVIDIA NIM, an
//! SMTP server that keeps what it receives, the coding agents, and
//! `spawn_app()`, which runs the real Sluice against them.

pub mod agents;
pub mod console;
pub mod dispatch_bench;
pub mod h2_provider;
pub mod helpers;
pub mod mock;
pub mod npm;
pub mod process;
pub mod python;
pub mod redis_cluster;
pub mod relay_bench;
pub mod smtp;
pub mod usage;
