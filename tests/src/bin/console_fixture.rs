//! `console-fixture`: the browser tests' world, for working on the console by
//! hand — Sluice (console at `/`, debug builds read its files from disk on
//! every request), a slow mock provider and a readable inbox. Prints the
//! environment a story reads, then runs until Ctrl-C or SIGTERM.
//!
//! `cargo run -p sluice-tests --bin console-fixture > /tmp/fixture.env`, then in
//! `tests/console`: `env $(cat /tmp/fixture.env) node --test first-sign-in.test.mjs`.

use sluice_tests::console::ConsoleFixture;

#[actix_web::main]
async fn main() {
    let fixture = ConsoleFixture::start().await;
    for (name, value) in fixture.env() {
        println!("{name}={value}");
    }
    eprintln!(
        "console fixture running at {}; Ctrl-C stops it",
        fixture.app.address
    );
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    fixture.stop().await;
}
