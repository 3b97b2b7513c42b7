//! Messages from the HTTP workers to the actors, carried in batches.
//!
//! The actors (router, keys, ledger) live on the system's thread; each request
//! sends them several messages from a worker thread (queue, reserve, finish,
//! usage row). Sent one by one, every message that finds the actors' thread
//! idle writes to its wake-up descriptor and wakes it: on the relay benchmark
//! 7 % of the gateway's CPU went to those writes, and the actors' thread woke
//! once per request (docs/BENCHMARKS.md). Through the courier, the messages a
//! worker sends while it handles what one wake-up brought it leave together,
//! as one delivery, once the worker has run every task that was ready: the
//! actors' thread wakes once per batch and hands them out on its own thread,
//! where sending costs no wake-up. A worker's messages keep their order.
//!
//! Off a worker thread (the actors' own thread, a plain thread, a runtime
//! without actix), a message is sent at once, as before.

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};

use actix::{Arbiter, ArbiterHandle, System};

/// One message to send, as the closure that sends it.
type Parcel = Box<dyn FnOnce() + Send>;

/// A worker thread's outgoing messages.
#[derive(Default)]
struct Outbox {
    /// Waiting for the next delivery.
    parcels: Vec<Parcel>,
    /// The actors' arbiter, once this thread's courier runs.
    home: Option<ArbiterHandle>,
    /// Wakes this thread's courier task.
    waker: Option<Waker>,
    /// The courier task is gone (the worker is stopping): send directly.
    closed: bool,
}

thread_local! {
    /// Set on the thread the actors live on: there, sending is already cheap.
    static HOME: Cell<bool> = const { Cell::new(false) };
    static OUTBOX: RefCell<Outbox> = RefCell::new(Outbox::default());
}

/// Mark this thread as the actors' own (called when they start on it).
pub fn home_here() {
    HOME.set(true);
}

/// Run `send` (which sends one actor message) on the actors' thread, batched
/// with this worker's other messages of the moment; at once where batching
/// does not apply.
pub fn deliver(send: impl FnOnce() + Send + 'static) {
    if HOME.get() {
        return send();
    }
    let mut send = Some(send);
    // `try_with`: a worker's tasks may be dropped, and send, as its thread ends.
    let _ = OUTBOX.try_with(|outbox| {
        let mut outbox = outbox.borrow_mut();
        if outbox.closed {
            return;
        }
        if outbox.home.is_none() {
            // The first message of this thread starts its courier, on an
            // arbiter's thread only (an actix-web worker is one).
            let Some(system) = System::try_current().filter(|_| Arbiter::try_current().is_some()) else {
                return;
            };
            outbox.home = Some(system.arbiter().clone());
            actix::spawn(courier());
        }
        outbox.parcels.extend(send.take().map(|s| Box::new(s) as Parcel));
        if let Some(waker) = outbox.waker.take() {
            waker.wake();
        }
    });
    if let Some(send) = send {
        send();
    }
}

/// This thread's courier: woken by the first parcel of a batch, it runs once
/// the tasks ready before it have (adding theirs), and takes the lot.
async fn courier() {
    let _closing = Closing;
    std::future::poll_fn(|cx| {
        OUTBOX.with_borrow_mut(|outbox| {
            let parcels = std::mem::take(&mut outbox.parcels);
            if let (Some(home), false) = (&outbox.home, parcels.is_empty()) {
                dispatch(home, parcels);
            }
            outbox.waker = Some(cx.waker().clone());
        });
        Poll::<()>::Pending
    })
    .await;
}

/// Hands a batch to the actors' thread. Their arbiter gone means the system is
/// stopping: their mailboxes are gone too, as a direct send would have found.
fn dispatch(home: &ArbiterHandle, parcels: Vec<Parcel>) {
    home.spawn_fn(move || parcels.into_iter().for_each(|send| send()));
}

/// The courier dropped (its worker stopping): what it holds goes now, and
/// later messages of this thread go directly.
struct Closing;

impl Drop for Closing {
    fn drop(&mut self) {
        let _ = OUTBOX.try_with(|outbox| {
            let mut outbox = outbox.borrow_mut();
            outbox.closed = true;
            outbox.waker = None;
            let parcels = std::mem::take(&mut outbox.parcels);
            if let (Some(home), false) = (&outbox.home, parcels.is_empty()) {
                dispatch(home, parcels);
            }
        });
    }
}
