//! Node packages the tests run (the browser driver, the coding agents, the
//! OpenAPI linters), each folder pinned by its `package-lock.json` and
//! installed with `npm ci` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One install at a time: two `npm ci` runs in one folder break each other.
static INSTALL: Mutex<()> = Mutex::new(());

/// `npm ci` in `dir` when its `node_modules` is missing or older than the lock
/// file; returns `dir/node_modules/.bin`. Panics, naming `dir`, when npm fails.
pub fn install(dir: &Path) -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if !fresh {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "npm ci in {} failed: these tests need Node.js and npm",
            dir.display()
        );
    }
    dir.join("node_modules/.bin")
}
