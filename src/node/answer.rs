//! The node's answers to the gRPC threads, and whether any is still due.
//!
//! A gRPC thread that has handed the node a request and has nothing else to do would go to
//! sleep and be woken by the answer. On virtual machines, waking a sleeping core costs tens to
//! hundreds of µs, as much as the fdatasync the answer waited for; so an idle gRPC thread
//! busy-polls ([`spin_while_due`], called by `api::threads` before the thread parks) while the
//! one answer in flight is due, for at most `--busy-poll`. "Due" is exact: every [`Answer`] is
//! counted when it is made and when it is dropped, sent or not, so no path of the node can leave
//! it set.
//!
//! Only a lone answer is polled for ([`POLL_WHILE_DUE_AT_MOST`]): with many requests in flight
//! the node answers them in batches, and polling would only take CPU from whatever else runs on
//! the machine (with a load generator on the same two cores, 16 and 256 clients lost 10-20% of
//! their puts per second to it, while one client's put latency halved).
//!
//! The counts are per process, not per node: they only decide whether to poll a little longer.

use futures::channel::oneshot;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Answers made, and answers dropped (after sending or not). `DROPPED <= MADE` always.
static MADE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A gRPC thread busy-polls only while this many answers or fewer are due.
const POLL_WHILE_DUE_AT_MOST: u64 = 1;

/// The node's half of one request's answer: a oneshot sender that counts itself.
pub(crate) struct Answer<T> {
    sender: Option<oneshot::Sender<T>>,
}

/// A new answer channel: the node keeps the [`Answer`], the asking task awaits the receiver.
pub(crate) fn channel<T>() -> (Answer<T>, oneshot::Receiver<T>) {
    let (sender, receiver) = oneshot::channel();
    MADE.fetch_add(1, Ordering::AcqRel);
    (
        Answer {
            sender: Some(sender),
        },
        receiver,
    )
}

impl<T> Answer<T> {
    /// Sends the answer; `Err` gives it back if the asking task is gone.
    pub(crate) fn send(mut self, value: T) -> Result<(), T> {
        match self.sender.take() {
            Some(sender) => sender.send(value),
            None => Err(value),
        }
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        // After the send above: once a poller sees nothing due, the asking task is already woken.
        DROPPED.fetch_add(1, Ordering::AcqRel);
    }
}

/// How many answers have been made and not yet sent or dropped.
pub fn due() -> u64 {
    // DROPPED first: MADE only grows, so this never sees more dropped than made.
    let dropped = DROPPED.load(Ordering::Acquire);
    MADE.load(Ordering::Acquire) - dropped
}

/// Busy-polls while a lone answer is due, until it is sent or `limit` has passed.
pub fn spin_while_due(limit: Duration) {
    let polled = |due: u64| (1..=POLL_WHILE_DUE_AT_MOST).contains(&due);
    if limit.is_zero() || !polled(due()) {
        return;
    }
    let start = Instant::now();
    while polled(due()) && start.elapsed() < limit {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The counts are per process and other tests of this binary hold answers of their own, so
    // these tests only assert what those cannot change.
    #[test]
    fn an_answer_is_due_until_sent_or_dropped() {
        let (sent, receiver) = channel::<u32>();
        let (dropped, _kept) = channel::<u32>();
        let (orphaned, gone) = channel::<u32>();
        drop(gone);
        assert!(due() >= 3);
        assert_eq!(sent.send(7), Ok(()));
        assert_eq!(futures::executor::block_on(receiver), Ok(7));
        assert!(due() >= 2, "two still held");
        drop(dropped);
        assert_eq!(orphaned.send(8), Err(8), "nobody is listening");
    }

    #[test]
    fn polling_ends_when_the_answer_is_sent() {
        let (answer, receiver) = channel::<u32>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            answer.send(1)
        });
        let start = Instant::now();
        spin_while_due(Duration::from_secs(30));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "polled on after the answer: {:?}",
            start.elapsed()
        );
        assert_eq!(sender.join().expect("sender"), Ok(()));
        assert_eq!(futures::executor::block_on(receiver), Ok(1));
        let start = Instant::now();
        spin_while_due(Duration::ZERO);
        assert!(start.elapsed() < Duration::from_secs(1), "zero never polls");
    }
}
