//! What a request holds while it waits and while it is sent: a [`Ticket`] for
//! its place in the queue, then a [`Permit`] for one request on one key. Both
//! give back what they hold when dropped, so a client that leaves at any point
//! frees its place, its slot and its tenant budget.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::courier;
use crate::key::{Finish, KeyActor, KeySpec, Outcome};
use crate::router::{CancelWait, RouteError, Router, TenantFinished};
use crate::scheduler::WaiterId;

/// A place in the router's queue; [`Ticket::wait`] resolves to the permit.
/// Dropping it before then gives the place back at once.
pub struct Ticket {
    pub(crate) waiter: WaiterId,
    pub(crate) rx: Option<oneshot::Receiver<Result<Permit, RouteError>>>,
    pub(crate) router: Addr<Router>,
}

impl Ticket {
    /// Wait for a key (or the wait's end).
    pub async fn wait(mut self) -> Result<Permit, RouteError> {
        let rx = self.rx.take().expect("a ticket is waited on once");
        let answer = rx.await.unwrap_or(Err(RouteError::Shutdown));
        // Answered: nothing left to cancel.
        self.waiter = 0;
        answer
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.waiter != 0 {
            let (router, waiter) = (self.router.clone(), self.waiter);
            courier::deliver(move || router.do_send(CancelWait(waiter)));
        }
    }
}

/// The right to send one request on one key. Report how it went with
/// [`Permit::finish`]; dropping it reports `Cancelled` (or `NotSent`).
pub struct Permit {
    pub(crate) id: u64,
    pub(crate) model: String,
    pub(crate) spec: Arc<KeySpec>,
    pub(crate) key: Addr<KeyActor>,
    /// Where to report the end when tenant budgets counted the request.
    pub(crate) tenant: Option<Recipient<TenantFinished>>,
    pub(crate) sent: bool,
    pub(crate) finished: bool,
    pub(crate) waited: Duration,
}

impl Permit {
    /// The key to send with.
    pub fn spec(&self) -> &KeySpec {
        &self.spec
    }
    /// The model as the client named it.
    pub fn model(&self) -> &str {
        &self.model
    }
    /// The provider's name for the model.
    pub fn upstream_model(&self) -> String {
        self.spec.upstream_model(&self.model)
    }
    /// How long the request waited for this permit.
    pub fn waited(&self) -> Duration {
        self.waited
    }
    /// The request is going out now: from here on it counts even if abandoned.
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }
    /// Report how the request ended.
    pub fn finish(mut self, outcome: Outcome) {
        self.report(outcome);
    }
    fn report(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(tenant) = self.tenant.take() {
            let tokens = match &outcome {
                Outcome::Success { tokens, .. } | Outcome::Cancelled { tokens } => *tokens,
                _ => None,
            };
            let finished = TenantFinished {
                permit: self.id,
                tokens,
                sent: outcome != Outcome::NotSent,
            };
            tenant.do_send(finished);
        }
        // Sent at once, not through the courier: the client may have its
        // answer before a batch leaves, and its next request must find the
        // key's slot free (weights and priorities pick by what is in flight).
        self.key.do_send(Finish {
            permit: self.id,
            model: std::mem::take(&mut self.model),
            outcome,
        });
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let outcome = if self.sent {
            Outcome::Cancelled { tokens: None }
        } else {
            Outcome::NotSent
        };
        self.report(outcome);
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("id", &self.id)
            .field("key_id", &self.spec.key_id)
            .field("model", &self.model)
            .finish()
    }
}
