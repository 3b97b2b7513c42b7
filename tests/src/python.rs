//! Python tools the tests drive (the OpenAI and Anthropic SDKs, schemathesis,
//! a generated API client), installed once into a virtualenv under `target/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Packages (pip requirement, module to import) the tests use. The SDKs are
/// pinned to the versions whose requests `/v1/messages` and `/v1/responses`
/// were measured against.
const PACKAGES: &[(&str, &str)] = &[
    ("openai==3.57.0", "openai"),
    ("anthropic==2.14.0", "anthropic"),
    ("schemathesis==4.32.5", "schemathesis"),
    ("openapi-python-client==0.29.1", "openapi_python_client"),
];

/// The virtualenv's python, with every package of [`PACKAGES`] installed.
/// Needs `python3` with `venv` and access to PyPI on first run.
pub fn python() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = workspace().join("target/test-venv");
    let python = venv.join("bin/python");
    let imports = PACKAGES
        .iter()
        .map(|(_, m)| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ready = Command::new(&python)
        .args(["-c", &imports])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv failed: these tests need python3 with venv"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q"])
            .args(PACKAGES.iter().map(|(p, _)| *p))
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "pip install of the test tools failed"
        );
    }
    python
}

/// A console script of the virtualenv, such as `schemathesis`.
pub fn tool(name: &str) -> PathBuf {
    python().parent().expect("bin dir").join(name)
}
