//! Which records of a partition may be committed: [`AckTracker`] knows
//! the oldest sample not delivered yet, in any lane, and acknowledges
//! everything before it, and only that. The batcher opens a group when a
//! lane starts a batch and tells it when a record is taken in; a lane's
//! sender closes the group once its batch is delivered.

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::mpsc;

/// Everything before `next` in `partition` is in the store (or dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub partition: u32,
    pub next: u64,
    /// When the last acknowledged record was received (ms).
    pub received_at: u64,
}

/// What is not delivered yet, shared by the batcher and the senders: the
/// first offset of every group of undelivered samples (a lane's uncut
/// samples, or a batch), counted, and how far the records were taken in.
pub struct AckTracker {
    partition: u32,
    undelivered: BTreeMap<u64, usize>,
    /// The offset after the last record taken in.
    through: Option<u64>,
    acked: Option<u64>,
    /// When the records not yet acknowledged were received: (offset, ms).
    received: VecDeque<(u64, u64)>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl AckTracker {
    /// Sends `partition`'s acknowledgements to `acks`.
    pub fn new(partition: u32, acks: mpsc::UnboundedSender<Ack>) -> AckTracker {
        AckTracker {
            partition,
            undelivered: BTreeMap::new(),
            through: None,
            acked: None,
            received: VecDeque::new(),
            acks,
        }
    }

    /// A group of samples starting at offset `first` waits for delivery.
    pub fn open(&mut self, first: u64) {
        *self.undelivered.entry(first).or_default() += 1;
    }

    /// The group that started at `first` is delivered.
    pub fn delivered(&mut self, first: u64) {
        if let Some(n) = self.undelivered.get_mut(&first) {
            *n -= 1;
            if *n == 0 {
                self.undelivered.remove(&first);
            }
        }
        self.report();
    }

    /// The record at `offset` is taken in: its samples are in their lanes.
    pub fn taken(&mut self, offset: u64, received_at: u64) {
        self.through = Some(offset + 1);
        self.received.push_back((offset, received_at));
        self.report();
    }

    /// Acknowledges up to the oldest undelivered sample, if that moved.
    fn report(&mut self) {
        let Some(through) = self.through else { return };
        let next = self.undelivered.keys().next().copied().unwrap_or(through);
        if self.acked.is_some_and(|a| next <= a) {
            return;
        }
        let mut received_at = 0;
        while let Some(&(offset, at)) = self.received.front() {
            if offset >= next {
                break;
            }
            received_at = at;
            self.received.pop_front();
        }
        self.acked = Some(next);
        let _ = self.acks.send(Ack {
            partition: self.partition,
            next,
            received_at,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(rx: &mut mpsc::UnboundedReceiver<Ack>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok().map(|a| a.next)).collect()
    }

    #[test]
    fn acknowledged_up_to_the_oldest_sample_undelivered_in_any_lane() {
        let (acks, mut rx) = mpsc::unbounded_channel();
        let mut p = AckTracker::new(3, acks);
        // Record 10 splits between two lanes, record 11 has nothing to send.
        p.open(10);
        p.open(10);
        p.taken(10, 1000);
        p.taken(11, 1001);
        // Record 12 goes to a third lane; a lane's cut leaves a rest at 12.
        p.open(12);
        p.open(12);
        p.taken(12, 1002);
        // Nothing before record 10 was waiting.
        assert_eq!(acked(&mut rx), vec![10]);
        p.delivered(12);
        p.delivered(10);
        assert_eq!(acked(&mut rx), Vec::<u64>::new(), "10 still has a lane out");
        p.delivered(10);
        assert_eq!(acked(&mut rx), vec![12]);
        p.delivered(12);
        assert_eq!(acked(&mut rx), vec![13]);
        // Records with nothing to deliver are acknowledged as taken.
        p.taken(13, 1003);
        assert_eq!(acked(&mut rx), vec![14]);
        assert!(p.received.is_empty());
    }
}
