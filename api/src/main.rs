//! The `sluice` binary.

/// jemalloc: measured against glibc's malloc and mimalloc on the relay benchmark
/// (docs/BENCHMARKS.md): as fast as mimalloc, and it gives memory back.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (the `MALLOC_CONF` of this build; the
/// `_RJEM_MALLOC_CONF` environment variable still overrides). Freed pages go
/// back to the system within a quarter second, by a background thread, not the
/// default ten seconds: idle RSS measured 37 MB before, 30 MB after, with the
/// same relay throughput. Within a second, a burst of 10,000 streams opening
/// in 3 s peaked at 305–376 MB of which 233 MB was live; within a quarter
/// second, 257–282 MB (docs/BENCHMARKS.md).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 59] = b"background_thread:true,dirty_decay_ms:250,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    sluice_api::cli::main()
}
