//! The web console in a real browser: each test runs one story of
//! `tests/console/*.test.mjs` (Playwright driving Debian's chromium) against a
//! fresh Sluice, mock provider and mailbox. Screenshots land in
//! `target/console-screenshots/`.

use sluice_api::config::FallbackDecl;
use sluice_tests::console::{run_story, run_story_with};

#[actix_rt::test]
async fn root_signs_in_first_and_must_change_the_password() {
    run_story("first-sign-in.test.mjs").await;
}

#[actix_rt::test]
async fn an_invited_person_signs_up_connects_a_client_and_sees_the_cost() {
    run_story("invite-journey.test.mjs").await;
}

#[actix_rt::test]
async fn the_key_board_moves_while_requests_run() {
    run_story("key-board.test.mjs").await;
}

#[actix_rt::test]
async fn a_user_who_opens_an_admin_page_is_refused() {
    run_story("refusals.test.mjs").await;
}

#[actix_rt::test]
async fn an_admin_sets_prices_allowances_and_group_policies() {
    run_story("prices.test.mjs").await;
}

#[actix_rt::test]
async fn an_admin_builds_reorders_edits_and_deletes_a_fallback_chain() {
    run_story_with("fallbacks.test.mjs", |config| {
        // A chain the config file owns: the page shows it, read-only.
        config.fallbacks = vec![FallbackDecl {
            name: "from-file".into(),
            models: vec!["minimax-m2.1".into()],
            wait_secs: 3,
        }];
    })
    .await;
}

#[actix_rt::test]
async fn every_page_renders_at_desktop_and_phone_width() {
    run_story("screenshots.test.mjs").await;
}
