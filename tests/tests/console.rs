//! The web console in a real browser: each test runs one story of
//! `tests/console/*.test.mjs` (Playwright driving Debian's chromium) against a
//! fresh Sluice, mock provider and mailbox. Screenshots land in
//! `target/console-screenshots/`.

use sluice_tests::console::run_story;

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
async fn every_page_renders_at_desktop_and_phone_width() {
    run_story("screenshots.test.mjs").await;
}
