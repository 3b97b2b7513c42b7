//! The coding agents the tests drive against Sluice: Claude Code (Anthropic
//! Messages) and Codex CLI (the Responses API), installed with `npm ci` into
//! `tests/agents/node_modules` on first run (about 800 MB; their native
//! binaries ship inside registry packages, nothing else is downloaded). Each
//! run gets a fresh `HOME` and only the environment it needs, so settings of
//! the machine it runs on cannot leak in, and every request stays on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::python::workspace;

/// How long one agent run may take before it is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// What an agent printed and how it ended.
#[derive(Debug)]
pub struct AgentRun {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output (the answer).
    pub stdout: String,
    /// Its standard error (progress, warnings).
    pub stderr: String,
}

/// The folder holding the agents' `package.json`.
pub fn agents_dir() -> PathBuf {
    workspace().join("tests/agents")
}

/// The agents' executables, installed on first use.
fn install() -> PathBuf {
    crate::npm::install(&agents_dir())
}

/// A fresh, empty home directory for one run.
fn fresh_home() -> PathBuf {
    let home = std::env::temp_dir().join(format!("sluice-agent-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).expect("create the agent's home");
    home
}

async fn run(program: &Path, args: &[&str], home: &Path, env: &[(&str, &str)]) -> AgentRun {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .current_dir(home)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {RUN_LIMIT:?}", program.display()))
        .expect("the agent starts");
    let _ = std::fs::remove_dir_all(home);
    AgentRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `claude -p PROMPT --model MODEL` with `ANTHROPIC_BASE_URL` at `base_url`
/// (no `/v1`) and the key sent as `x-api-key`.
pub async fn claude_code(base_url: &str, key: &str, model: &str, prompt: &str) -> AgentRun {
    let bin = install().join("claude");
    let home = fresh_home();
    let env = [
        ("ANTHROPIC_BASE_URL", base_url),
        ("ANTHROPIC_API_KEY", key),
        // No connectivity check, telemetry or update look-ups: loopback only.
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
    ];
    run(&bin, &["-p", prompt, "--model", model], &home, &env).await
}

/// `codex exec PROMPT` with a custom provider at `base_url` (ending in `/v1`)
/// speaking the Responses API over HTTP, the key sent as a bearer token.
pub async fn codex_exec(base_url: &str, key: &str, model: &str, prompt: &str) -> AgentRun {
    let bin = install().join("codex");
    let home = fresh_home();
    std::fs::create_dir_all(home.join(".codex")).expect("create ~/.codex");
    // The built-in OpenAI provider would use the Responses WebSocket transport:
    // a custom provider is the route that speaks HTTP to a gateway.
    let config = format!(
        r#"model = "{model}"
model_provider = "local"
approval_policy = "never"
sandbox_mode = "read-only"

[model_providers.local]
name = "Sluice"
base_url = "{base_url}"
env_key = "SLUICE_KEY"
wire_api = "responses"

[features]
plugins = false
remote_plugin = false
apps = false

[analytics]
enabled = false
"#
    );
    std::fs::write(home.join(".codex/config.toml"), config).expect("write codex config");
    let env = [("SLUICE_KEY", key)];
    run(&bin, &["exec", "--skip-git-repo-check", prompt], &home, &env).await
}
