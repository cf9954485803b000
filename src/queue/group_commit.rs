//! What the two log writers (the file backend's and the Kafka spill log's)
//! share: how big one group commit may get and how a group is taken off
//! the writer's channel.

use std::time::Duration;

use tokio::sync::mpsc;

/// Most batches one group commit takes, and most bytes: bounds the latency
/// of the first batch in a group and the memory of one write.
pub const MAX_GROUP: usize = 1024;
pub const MAX_GROUP_BYTES: usize = 8 << 20;
/// How long an accepted batch that failed to write waits before the next try.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What a writer made of one command it took off its channel.
pub enum Took {
    /// A batch of this many bytes joined the group.
    Batch(usize),
    /// Something else, which does not end the group.
    Other,
    /// Something that must wait until the group is written.
    Last,
}

/// Blocks for the next command, then takes whatever else is already
/// waiting, without waiting for more, until the group is full or `take`
/// ends it. Returns the batches taken; `None` once the channel is closed
/// and empty. `take` gets the receiver too, to close it on shutdown.
pub fn next_group<T>(
    rx: &mut mpsc::Receiver<T>,
    take: impl FnMut(&mut mpsc::Receiver<T>, T) -> Took,
) -> Option<usize> {
    let first = rx.blocking_recv()?;
    Some(group_from(rx, first, take))
}

/// Like [`next_group`], but looks at the channel every `pace` instead of
/// being woken by each send: for a writer nobody waits on (accepted mode),
/// so that senders never pay for waking its thread. After `IDLE_POLLS`
/// empty looks it blocks, so that an idle server sleeps.
pub fn next_group_paced<T>(
    rx: &mut mpsc::Receiver<T>,
    pace: Duration,
    take: impl FnMut(&mut mpsc::Receiver<T>, T) -> Took,
) -> Option<usize> {
    for _ in 0..IDLE_POLLS {
        match rx.try_recv() {
            Ok(first) => return Some(group_from(rx, first, take)),
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(pace),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
        }
    }
    next_group(rx, take)
}

/// Empty looks before a paced writer blocks instead.
const IDLE_POLLS: usize = 100;

fn group_from<T>(
    rx: &mut mpsc::Receiver<T>,
    first: T,
    mut take: impl FnMut(&mut mpsc::Receiver<T>, T) -> Took,
) -> usize {
    let mut next = Some(first);
    let (mut count, mut bytes) = (0, 0);
    while let Some(cmd) = next.take() {
        match take(rx, cmd) {
            Took::Batch(size) => {
                count += 1;
                bytes += size;
            }
            Took::Other => {}
            Took::Last => break,
        }
        if count < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            next = rx.try_recv().ok();
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `cmds`, then takes groups until the channel is empty.
    fn groups(cmds: Vec<(usize, bool)>) -> Vec<usize> {
        let (tx, mut rx) = mpsc::channel(cmds.len() + 1);
        for c in cmds {
            tx.try_send(c).unwrap();
        }
        drop(tx);
        let mut sizes = Vec::new();
        while let Some(n) = next_group(&mut rx, |_, (bytes, last)| match (bytes, last) {
            (_, true) => Took::Last,
            (0, false) => Took::Other,
            (b, false) => Took::Batch(b),
        }) {
            sizes.push(n);
        }
        sizes
    }

    #[test]
    fn groups_stop_at_the_count_the_bytes_or_a_last_command() {
        let many = vec![(1, false); MAX_GROUP + 5];
        assert_eq!(groups(many), vec![MAX_GROUP, 5]);
        let big = vec![(MAX_GROUP_BYTES / 2, false); 5];
        assert_eq!(groups(big), vec![2, 2, 1]);
        let mixed = vec![(1, false), (0, false), (1, false), (0, true), (1, false)];
        assert_eq!(groups(mixed), vec![2, 1]);
    }

    #[test]
    fn close_inside_take_still_drains_what_waits() {
        let (tx, mut rx) = mpsc::channel(4);
        for b in [1, 2, 3] {
            tx.try_send(b).unwrap();
        }
        let taken = next_group(&mut rx, |rx, b| {
            rx.close();
            Took::Batch(b)
        });
        assert_eq!(taken, Some(3));
        assert!(tx.try_send(4).is_err());
        assert_eq!(next_group(&mut rx, |_, _| Took::Other), None);
    }
}
