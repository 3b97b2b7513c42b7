//! The courier: a worker's messages to the actors leave together when its turn
//! ends, in the order sent, and none is lost when the worker stops.

use std::sync::mpsc;

use actix::prelude::*;
use futures_util::FutureExt;
use sluice_actors::courier;
use tokio::sync::watch;

#[derive(Message)]
#[rtype(result = "()")]
struct Note(u32);

/// Notes what it receives, in order.
struct Collector(watch::Sender<Vec<u32>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Note> for Collector {
    type Result = ();
    fn handle(&mut self, Note(n): Note, _ctx: &mut Context<Self>) {
        self.0.send_modify(|notes| notes.push(n));
    }
}

fn collector() -> (Addr<Collector>, watch::Receiver<Vec<u32>>) {
    let (tx, rx) = watch::channel(Vec::new());
    (Collector(tx).start(), rx)
}

fn note(to: &Addr<Collector>, n: u32) {
    let to = to.clone();
    courier::deliver(move || to.do_send(Note(n)));
}

async fn until_received(rx: &mut watch::Receiver<Vec<u32>>, count: usize) -> Vec<u32> {
    rx.wait_for(|notes| notes.len() >= count).await.unwrap().clone()
}

#[actix_rt::test]
async fn a_workers_messages_leave_when_its_turn_ends_and_arrive_in_order() {
    let (to, mut received) = collector();
    let worker = Arbiter::new();
    let (sent, was_sent) = mpsc::channel();
    let (go_on, may_go_on) = mpsc::channel::<()>();
    let to_worker = to.clone();
    worker.spawn(async move {
        for n in 0..3 {
            note(&to_worker, n);
        }
        sent.send(()).unwrap();
        // The worker's turn goes on until the test says: nothing may have left yet.
        may_go_on.recv().unwrap();
        note(&to_worker, 3);
    });
    was_sent.recv().unwrap();
    // Sent one by one, the three would be in the collector's mailbox already,
    // ahead of this note; batched, they wait for the worker's turn to end.
    to.send(Note(100)).await.unwrap();
    assert_eq!(
        *received.borrow(),
        vec![100],
        "nothing leaves before the worker's turn ends"
    );
    go_on.send(()).unwrap();
    assert_eq!(until_received(&mut received, 5).await, vec![100, 0, 1, 2, 3]);
    worker.stop();
}

#[actix_rt::test]
async fn a_stopping_worker_still_delivers_what_it_sent() {
    let (to, mut received) = collector();
    for round in 0..3u32 {
        let worker = Arbiter::new();
        let to_worker = to.clone();
        worker.spawn(async move {
            note(&to_worker, round * 10);
            note(&to_worker, round * 10 + 1);
            // Stop at once: the courier may never get its turn.
            Arbiter::current().stop();
        });
        worker.join().unwrap();
    }
    assert_eq!(until_received(&mut received, 6).await, vec![0, 1, 10, 11, 20, 21]);
}

#[actix_rt::test]
async fn off_a_worker_a_message_is_sent_at_once() {
    let (to, received) = collector();
    let to_thread = to.clone();
    // A plain thread has no arbiter to batch on.
    std::thread::spawn(move || note(&to_thread, 7)).join().unwrap();
    // The actors' own thread sends directly too.
    courier::home_here();
    note(&to, 8);
    // Both are in the mailbox already: one turn of this thread takes them.
    to.send(Note(9)).await.unwrap();
    assert_eq!(*received.borrow(), vec![7, 8, 9]);
}

#[actix_rt::test]
async fn settled_waits_for_what_a_worker_has_not_handed_over_yet() {
    let (to, received) = collector();
    let worker = Arbiter::new();
    let (sent, was_sent) = mpsc::channel();
    let (go_on, may_go_on) = mpsc::channel::<()>();
    let to_worker = to.clone();
    worker.spawn(async move {
        note(&to_worker, 1);
        sent.send(()).unwrap();
        may_go_on.recv().unwrap();
    });
    was_sent.recv().unwrap();
    // The worker holds the note: not settled (the ledger's last write at
    // shutdown would overtake it).
    let mut settled = Box::pin(courier::settled());
    assert!(settled.as_mut().now_or_never().is_none());
    go_on.send(()).unwrap();
    settled.await;
    // Settled: the note is in the mailbox, ahead of anything sent from now on.
    to.send(Note(2)).await.unwrap();
    assert_eq!(*received.borrow(), vec![1, 2]);
    worker.stop();
}
