//! The loop against a scripted source and output: what it commits and when.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Submit(u32, u64),
    Ack(u32, u64),
    Commit(u32, u64),
    Release(u32),
    LetGo(u32),
    Close,
    Leave,
}

type Events = Rc<RefCell<Vec<Ev>>>;

/// Partitions with records `0..have`, which end at `end` (past `have`:
/// more is being written, never caught up).
struct FakeSource {
    events: Events,
    /// Per partition: the next offset to return, how many records there
    /// are, and where the partition ends.
    next: BTreeMap<u32, u64>,
    have: BTreeMap<u32, u64>,
    end: BTreeMap<u32, u64>,
    /// Records per partition per poll, at most.
    batch: u64,
    polls: usize,
    /// At this poll, the partition is let go.
    let_go_at: Option<(usize, u32)>,
    /// After this many polls, stop (as SIGTERM would).
    stop_after: Option<(usize, Arc<AtomicBool>)>,
}

impl FakeSource {
    fn new(events: &Events, have: &[(u32, u64)]) -> FakeSource {
        FakeSource {
            events: events.clone(),
            next: have.iter().map(|&(p, _)| (p, 0)).collect(),
            have: have.iter().copied().collect(),
            end: have.iter().copied().collect(),
            batch: 2,
            polls: 0,
            let_go_at: None,
            stop_after: None,
        }
    }
}

impl RecordSource for FakeSource {
    fn rebalance(&mut self) -> anyhow::Result<Vec<u32>> {
        match self.let_go_at {
            Some((at, p)) if at == self.polls => {
                self.let_go_at = None;
                Ok(vec![p])
            }
            _ => Ok(Vec::new()),
        }
    }

    fn let_go(&mut self, partition: u32) {
        self.next.remove(&partition);
        self.events.borrow_mut().push(Ev::LetGo(partition));
    }

    fn poll(&mut self, _wait: Duration, waiting: &BTreeSet<u32>) -> anyhow::Result<Vec<Polled>> {
        self.polls += 1;
        assert!(self.polls < 10_000, "the loop never ended");
        if let Some((after, stop)) = &self.stop_after {
            if self.polls >= *after {
                stop.store(true, Ordering::Relaxed);
            }
        }
        let mut out = Vec::new();
        for (&p, next) in self.next.iter_mut() {
            if waiting.contains(&p) {
                continue;
            }
            let until = (*next + self.batch).min(self.have[&p]);
            for offset in *next..until {
                out.push(Polled {
                    partition: p,
                    offset,
                    value: Bytes::new(),
                    learn: false,
                });
            }
            *next = until;
        }
        Ok(out)
    }

    fn is_end(&mut self, partition: u32, next: u64) -> bool {
        self.end.get(&partition) == Some(&next)
    }

    fn caught_up(&mut self) -> anyhow::Result<bool> {
        Ok(self.next.iter().all(|(p, next)| self.end[p] == *next))
    }

    fn commit(&mut self, offsets: &BTreeMap<u32, u64>) -> anyhow::Result<()> {
        let mut ev = self.events.borrow_mut();
        ev.extend(offsets.iter().map(|(&p, &n)| Ev::Commit(p, n)));
        Ok(())
    }

    fn lag(&mut self, committed: &BTreeMap<u32, u64>) -> anyhow::Result<Vec<(u32, i64)>> {
        Ok(self
            .next
            .keys()
            .map(|p| (*p, (self.end[p] - committed.get(p).unwrap_or(&0)) as i64))
            .collect())
    }

    fn leave(self) {
        self.events.borrow_mut().push(Ev::Leave);
    }
}

/// Takes `room` records per partition at a time; acknowledges what it
/// took at the next `acked`, but never offsets from `never_ack` on.
struct FakeOutput {
    events: Events,
    room: usize,
    in_flight: BTreeMap<u32, Vec<u64>>,
    never_ack: BTreeMap<u32, u64>,
    /// Acknowledgements of nothing (`next` = the first offset taken), as
    /// the pipeline may send when a partition starts.
    empty_acks: Vec<(u32, u64)>,
}

impl FakeOutput {
    fn new(events: &Events, room: usize) -> FakeOutput {
        FakeOutput {
            events: events.clone(),
            room,
            in_flight: BTreeMap::new(),
            never_ack: BTreeMap::new(),
            empty_acks: Vec::new(),
        }
    }
}

impl Output for FakeOutput {
    fn has_room(&mut self, partition: u32) -> anyhow::Result<bool> {
        Ok(self.in_flight.get(&partition).map_or(0, Vec::len) < self.room)
    }

    fn learn(&mut self, _partition: u32, _offset: u64, _value: Bytes) -> anyhow::Result<()> {
        Ok(())
    }

    fn submit(&mut self, partition: u32, offset: u64, _value: Bytes) -> anyhow::Result<()> {
        assert!(self.has_room(partition)?, "submitted without room");
        if !self.in_flight.contains_key(&partition) {
            self.empty_acks.push((partition, offset));
        }
        self.in_flight.entry(partition).or_default().push(offset);
        self.events.borrow_mut().push(Ev::Submit(partition, offset));
        Ok(())
    }

    fn acked(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        let mut acks = std::mem::take(&mut self.empty_acks);
        for (&p, offsets) in self.in_flight.iter_mut() {
            let limit = self.never_ack.get(&p).copied().unwrap_or(u64::MAX);
            let done: Vec<u64> = offsets.iter().copied().filter(|&o| o < limit).collect();
            offsets.retain(|&o| o >= limit);
            if let Some(last) = done.last() {
                acks.push((p, last + 1));
                self.events.borrow_mut().push(Ev::Ack(p, last + 1));
            }
        }
        Ok(acks)
    }

    fn release(&mut self, partition: u32) {
        self.in_flight.remove(&partition);
        self.events.borrow_mut().push(Ev::Release(partition));
    }

    fn close(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        self.events.borrow_mut().push(Ev::Close);
        self.acked()
    }
}

fn settings(exit_at_end: bool, commit_every: Duration) -> LoopSettings {
    LoopSettings {
        exit_at_end,
        poll_interval: Duration::from_millis(1),
        commit_every,
    }
}

fn metrics() -> ConsumeMetrics {
    ConsumeMetrics::new().unwrap()
}

const NEVER: Duration = Duration::from_secs(3600);

fn position(events: &[Ev], e: Ev) -> usize {
    events
        .iter()
        .position(|x| *x == e)
        .unwrap_or_else(|| panic!("no {e:?} in {events:?}"))
}

/// Every commit is of an offset the output acknowledged before it.
fn assert_commits_acknowledged(events: &[Ev]) {
    let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
    for e in events {
        match *e {
            Ev::Ack(p, n) => {
                acked.insert(p, n);
            }
            Ev::Commit(p, n) => assert!(
                acked.get(&p).is_some_and(|&a| a >= n),
                "{e:?} before its acknowledgement: {events:?}"
            ),
            _ => {}
        }
    }
}

#[test]
fn a_caught_up_partition_commits_at_once_the_others_when_due_or_at_close() {
    let events = Events::default();
    // Partition 0 reaches its end; partition 1 has 6 records of which the
    // output acknowledges 5, and more are being written.
    let mut source = FakeSource::new(&events, &[(0, 4), (1, 6)]);
    source.end.insert(1, 100);
    let stop = Arc::new(AtomicBool::new(false));
    source.stop_after = Some((20, stop.clone()));
    let mut output = FakeOutput::new(&events, 100);
    output.never_ack.insert(1, 5);
    run(
        source,
        &mut output,
        &settings(false, NEVER),
        &stop,
        &metrics(),
    )
    .unwrap();

    let ev = events.borrow();
    assert_commits_acknowledged(&ev);
    let close = position(&ev, Ev::Close);
    assert!(
        position(&ev, Ev::Commit(0, 4)) < close,
        "caught up: at once"
    );
    let early: Vec<&Ev> = ev[..close]
        .iter()
        .filter(|e| matches!(e, Ev::Commit(1, _)))
        .collect();
    assert!(early.is_empty(), "not due, not at its end: {early:?}");
    assert!(position(&ev, Ev::Commit(1, 5)) > close, "at close");
    assert!(!ev.contains(&Ev::Commit(1, 6)), "never acknowledged");
    assert_eq!(ev.last(), Some(&Ev::Leave));
}

#[test]
fn acknowledged_offsets_are_committed_when_due() {
    let events = Events::default();
    let mut source = FakeSource::new(&events, &[(1, 6)]);
    source.end.insert(1, 100);
    let stop = Arc::new(AtomicBool::new(false));
    source.stop_after = Some((20, stop.clone()));
    let mut output = FakeOutput::new(&events, 100);
    run(
        source,
        &mut output,
        &settings(false, Duration::ZERO),
        &stop,
        &metrics(),
    )
    .unwrap();
    let ev = events.borrow();
    assert_commits_acknowledged(&ev);
    assert!(position(&ev, Ev::Commit(1, 6)) < position(&ev, Ev::Close));
}

#[test]
fn a_partition_let_go_is_committed_before_it_is_released() {
    let events = Events::default();
    let mut source = FakeSource::new(&events, &[(0, 50), (1, 50)]);
    source.let_go_at = Some((3, 0));
    let stop = Arc::new(AtomicBool::new(false));
    source.stop_after = Some((10, stop.clone()));
    let mut output = FakeOutput::new(&events, 100);
    run(
        source,
        &mut output,
        &settings(false, NEVER),
        &stop,
        &metrics(),
    )
    .unwrap();

    let ev = events.borrow();
    assert_commits_acknowledged(&ev);
    // Three polls of two records each were handed out and acknowledged.
    let commit = position(&ev, Ev::Commit(0, 6));
    let release = position(&ev, Ev::Release(0));
    let let_go = position(&ev, Ev::LetGo(0));
    assert!(commit < release && release < let_go, "{ev:?}");
    assert!(
        !ev[let_go..]
            .iter()
            .any(|e| matches!(e, Ev::Submit(0, _) | Ev::Commit(0, _))),
        "nothing of a partition after it was let go: {ev:?}"
    );
    // A let-go commits every partition; the one kept is next committed at close.
    assert!(position(&ev, Ev::Commit(1, 6)) < release);
    assert!(position(&ev, Ev::Commit(1, 20)) > position(&ev, Ev::Close));
}

#[test]
fn back_pressure_is_respected_and_exit_at_end_commits_everything() {
    let events = Events::default();
    let source = FakeSource::new(&events, &[(0, 5), (1, 3)]);
    // Room for one record at a time: most of each poll waits.
    let mut output = FakeOutput::new(&events, 1);
    let stop = AtomicBool::new(false);
    run(
        source,
        &mut output,
        &settings(true, NEVER),
        &stop,
        &metrics(),
    )
    .unwrap();

    let ev = events.borrow();
    assert_commits_acknowledged(&ev);
    for (p, n) in [(0, 5), (1, 3)] {
        let submitted: Vec<u64> = ev
            .iter()
            .filter_map(|e| match *e {
                Ev::Submit(q, o) if q == p => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(submitted, (0..n).collect::<Vec<_>>(), "partition {p}");
        assert!(position(&ev, Ev::Commit(p, n)) < position(&ev, Ev::Close));
    }
    assert_eq!(ev.last(), Some(&Ev::Leave));
}

#[test]
fn nothing_acknowledged_nothing_committed() {
    let events = Events::default();
    let mut source = FakeSource::new(&events, &[(0, 3)]);
    source.end.insert(0, 100);
    let stop = Arc::new(AtomicBool::new(false));
    source.stop_after = Some((5, stop.clone()));
    let mut output = FakeOutput::new(&events, 100);
    // The store never answers: only the acknowledgement of nothing comes.
    output.never_ack.insert(0, 0);
    run(
        source,
        &mut output,
        &settings(false, Duration::ZERO),
        &stop,
        &metrics(),
    )
    .unwrap();
    let ev = events.borrow();
    assert!(ev.contains(&Ev::Submit(0, 0)), "{ev:?}");
    assert!(
        !ev.iter().any(|e| matches!(e, Ev::Commit(..))),
        "committed without an acknowledgement: {ev:?}"
    );
}
