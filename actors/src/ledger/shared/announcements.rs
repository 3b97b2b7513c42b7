//! Announcements that an account's holds shrank, on the deployment's
//! `<prefix>:quota:freed` channel: the waiting reservations of that account
//! try again. After a lost subscription every waiting reservation does, since
//! announcements made meanwhile were missed.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;

use crate::ledger::{Ledger, QuotaTarget};
use crate::quota_store::{parse_freed, QuotaStore};

/// The longest pause between two attempts to subscribe.
const MAX_SUBSCRIBE_BACKOFF: Duration = Duration::from_secs(5);

/// An account's holds shrank (announced by a replica, or settled by this one).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Freed(pub(super) QuotaTarget);

/// Subscribed (again) to announcements; those made meanwhile were missed.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Subscribed;

/// Redis answers again (after it did not).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct StoreBack;

/// Listen for announcements that accounts' holds shrank, resubscribing after
/// a lost connection, until the ledger stops.
pub(super) async fn listen(store: Arc<QuotaStore>, ledger: Addr<Ledger>) {
    let mut backoff = Duration::from_millis(200);
    while ledger.connected() {
        match store.subscribe().await {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(200);
                ledger.do_send(Subscribed);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    match parse_freed(&text) {
                        Some((origin, account)) if origin != store.origin() => ledger.do_send(Freed(account)),
                        _ => {}
                    }
                }
                tracing::warn!("quota: lost the subscription to freed holds; resubscribing");
            }
            Err(e) => tracing::debug!(error = %e, "quota: cannot subscribe to freed holds; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_SUBSCRIBE_BACKOFF);
    }
}

impl Handler<Freed> for Ledger {
    type Result = ();

    fn handle(&mut self, Freed(account): Freed, ctx: &mut Context<Self>) {
        *self.shared().heard.entry(account).or_default() += 1;
        self.retry_waiting(ctx, Some(account));
    }
}

impl Handler<Subscribed> for Ledger {
    type Result = ();

    fn handle(&mut self, _msg: Subscribed, ctx: &mut Context<Self>) {
        self.shared().missed += 1;
        self.reconcile_once(ctx);
        self.retry_waiting(ctx, None);
    }
}

impl Handler<StoreBack> for Ledger {
    type Result = ();

    fn handle(&mut self, _msg: StoreBack, ctx: &mut Context<Self>) {
        self.reconcile_once(ctx);
    }
}
