//! The real `sluice` binary on an address already taken: one clear line on
//! standard error and exit status 1, no panic, no backtrace — for the main
//! address and for `/metrics`' own.

use std::net::TcpListener;
use std::process::Command;

fn start_on_taken(var: &str) -> (Option<i32>, String) {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("sluice-bind-{}-{var}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env_clear()
        .env("SLUICE_DATA_DIR", &dir)
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env(var, &addr)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("sluice runs");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_taken_port_is_one_clear_line_and_exit_status_1() {
    for var in ["SLUICE_LISTEN", "SLUICE_METRICS_LISTEN"] {
        let (code, stderr) = start_on_taken(var);
        assert_eq!(code, Some(1), "{var}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{var}: {stderr}");
        assert!(
            lines[0].starts_with("sluice: cannot listen on 127.0.0.1:"),
            "{var}: {stderr}"
        );
        assert!(lines[0].contains("Address already in use"), "{var}: {stderr}");
        assert!(!stderr.contains("panicked"), "{var}: {stderr}");
    }
}
