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
//! without actix), a message is sent at once, as before. A message whose
//! effect the client's next request must see (a permit's end: the key's slot)
//! does not take the courier: the client may have its answer before the batch
//! leaves.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::task::{Poll, Waker};

use actix::{Arbiter, ArbiterHandle, System};

/// One message to send, as the closure that sends it.
type Parcel = Box<dyn FnOnce() + Send>;

/// Parcels queued on any worker and not yet handed out on the actors' thread.
static IN_TRANSIT: AtomicUsize = AtomicUsize::new(0);
/// Told when the last parcel in transit is handed out.
static SETTLED: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

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

impl Outbox {
    /// Hand what waits to the actors' thread, if anything does.
    fn send_batch(&mut self) {
        let parcels = std::mem::take(&mut self.parcels);
        if let (Some(home), false) = (&self.home, parcels.is_empty()) {
            dispatch(home, parcels);
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // The thread ends with parcels its courier never took (no courier ran
        // its `Closing`): they are lost, as messages to a stopped system are;
        // count them out so that nobody waits for them.
        count_out(self.parcels.len());
    }
}

/// `count` parcels are no longer in transit: tell `settled` when none is.
fn count_out(count: usize) {
    if count > 0 && IN_TRANSIT.fetch_sub(count, Ordering::SeqCst) == count {
        SETTLED.notify_waiters();
    }
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
        if let Some(send) = send.take() {
            IN_TRANSIT.fetch_add(1, Ordering::SeqCst);
            outbox.parcels.push(Box::new(send));
        }
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
            outbox.send_batch();
            outbox.waker = Some(cx.waker().clone());
        });
        Poll::<()>::Pending
    })
    .await;
}

/// Hands a batch to the actors' thread. Their arbiter gone means the system is
/// stopping: their mailboxes are gone too, as a direct send would have found.
fn dispatch(home: &ArbiterHandle, parcels: Vec<Parcel>) {
    let batch = Batch {
        count: parcels.len(),
        parcels,
    };
    home.spawn_fn(move || batch.hand_out());
}

/// Waits until every message queued on a worker has been handed out on the
/// actors' thread. A worker answers its client before its courier has run:
/// whoever must see all of them in a mailbox (the ledger's last write at
/// shutdown) waits for this first.
pub async fn settled() {
    loop {
        let notified = SETTLED.notified();
        if IN_TRANSIT.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

/// Parcels on their way; counted out once handed out, or dropped undelivered.
struct Batch {
    parcels: Vec<Parcel>,
    count: usize,
}

impl Batch {
    fn hand_out(mut self) {
        std::mem::take(&mut self.parcels)
            .into_iter()
            .for_each(|send| send());
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        count_out(self.count);
    }
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
            outbox.send_batch();
        });
    }
}
