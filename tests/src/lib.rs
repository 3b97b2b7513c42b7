//! End-to-end test support: a mock provider that behaves like NVIDIA NIM and
//! `spawn_app()`, which runs the real Sluice against it.

pub mod helpers;
pub mod mock;
