//! What a budget remembers of its sliding window, at a cost that does not grow
//! with the traffic. While a limit needs them, every request is an entry (its
//! instant and tokens) with running sums beside; a key without any limit keeps
//! per-second counts instead, so a paid key at 10,000 requests a minute costs the
//! same per request as a free one at 40 and holds 62 numbers, not 10,000 entries.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Instant,
    tokens: u64,
    permit: u64,
}

/// One second of an unlimited key's traffic.
#[derive(Clone, Copy, Debug, Default)]
struct Second {
    /// Seconds since the window's origin; which second this slot holds.
    index: u64,
    requests: u32,
    tokens: u64,
}

/// Slots kept: enough for a window of a minute plus its margin, with room.
const SECONDS: usize = 128;

#[derive(Debug)]
enum Memory {
    /// Every request in the window, oldest first; `tokens` is their sum.
    Exact { entries: VecDeque<Entry>, tokens: u64 },
    /// Per-second counts, in a ring indexed by second.
    Counted { seconds: Box<[Second; SECONDS]> },
}

/// A sliding window of requests and their tokens.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    origin: Instant,
    memory: Memory,
    /// Requests not yet finished: where their tokens were counted, to settle them.
    open: HashMap<u64, (u64, u64)>,
}

impl Window {
    /// An empty window of `span` (the provider's window plus the safety margin),
    /// exact or counted.
    pub fn new(span: Duration, exact: bool, now: Instant) -> Self {
        Window {
            span,
            origin: now,
            memory: if exact {
                Memory::Exact {
                    entries: VecDeque::new(),
                    tokens: 0,
                }
            } else {
                Memory::Counted {
                    seconds: Box::new([Second::default(); SECONDS]),
                }
            },
            open: HashMap::new(),
        }
    }

    /// Whether every request is kept (a limit needs the exact edges).
    pub fn is_exact(&self) -> bool {
        matches!(self.memory, Memory::Exact { .. })
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Seconds a counted window covers: any second that overlaps the span.
    fn counted_from(&self, now: Instant) -> u64 {
        self.second(now).saturating_sub(self.span.as_secs().max(1))
    }

    /// Drop what left the window.
    pub fn prune(&mut self, now: Instant) {
        let span = self.span;
        if let Memory::Exact { entries, tokens } = &mut self.memory {
            while let Some(first) = entries.front() {
                if first.at + span > now {
                    break;
                }
                *tokens -= first.tokens;
                entries.pop_front();
            }
        }
    }

    /// Count a request sent at `now`.
    pub fn push(&mut self, now: Instant, permit: u64, tokens: u64) {
        let second = self.second(now);
        match &mut self.memory {
            Memory::Exact { entries, tokens: sum } => {
                entries.push_back(Entry {
                    at: now,
                    tokens,
                    permit,
                });
                *sum += tokens;
            }
            Memory::Counted { seconds } => {
                let slot = &mut seconds[(second as usize) % SECONDS];
                if slot.index != second {
                    *slot = Second {
                        index: second,
                        ..Second::default()
                    };
                }
                slot.requests += 1;
                slot.tokens += tokens;
            }
        }
        self.open.insert(permit, (second, tokens));
    }

    /// Requests in the window (call [`Window::prune`] first).
    pub fn requests(&self, now: Instant) -> u32 {
        match &self.memory {
            Memory::Exact { entries, .. } => entries.len() as u32,
            Memory::Counted { seconds } => {
                let from = self.counted_from(now);
                seconds
                    .iter()
                    .filter(|s| s.index >= from && s.requests > 0)
                    .map(|s| s.requests)
                    .sum()
            }
        }
    }

    /// Tokens in the window (call [`Window::prune`] first).
    pub fn tokens(&self, now: Instant) -> u64 {
        match &self.memory {
            Memory::Exact { tokens, .. } => *tokens,
            Memory::Counted { seconds } => {
                let from = self.counted_from(now);
                seconds.iter().filter(|s| s.index >= from).map(|s| s.tokens).sum()
            }
        }
    }

    /// When the `n`-th oldest request (from 0) leaves the window; exact windows only.
    pub fn leaves_at(&self, n: usize) -> Option<Instant> {
        match &self.memory {
            Memory::Exact { entries, .. } => entries.get(n).map(|e| e.at + self.span),
            Memory::Counted { .. } => None,
        }
    }

    /// When enough of the oldest requests have left for `used - freed + need <= limit`.
    /// Walks only as far as it must: to the first entry that frees enough.
    pub fn tokens_free_at(&self, need: u64, limit: u64) -> Option<Instant> {
        let Memory::Exact { entries, tokens } = &self.memory else {
            return None;
        };
        let mut freed = 0;
        for entry in entries {
            freed += entry.tokens;
            if tokens - freed + need <= limit {
                return Some(entry.at + self.span);
            }
        }
        None
    }

    /// The tokens counted for a request still open.
    pub fn tokens_of(&self, permit: u64) -> Option<u64> {
        self.open.get(&permit).map(|(_, t)| *t)
    }

    /// Replace a request's estimated tokens with what it used, and close it.
    pub fn settle(&mut self, permit: u64, used: u64) {
        let Some((second, counted)) = self.open.remove(&permit) else {
            return;
        };
        match &mut self.memory {
            Memory::Exact { entries, tokens } => {
                // Open requests are the newest: look from the back.
                if let Some(entry) = entries.iter_mut().rev().find(|e| e.permit == permit) {
                    *tokens = *tokens - entry.tokens + used;
                    entry.tokens = used;
                }
            }
            Memory::Counted { seconds } => {
                let slot = &mut seconds[(second as usize) % SECONDS];
                if slot.index == second {
                    slot.tokens = slot.tokens - counted + used;
                }
            }
        }
    }

    /// A request that never went out: it does not count.
    pub fn forget(&mut self, permit: u64) {
        let Some((second, counted)) = self.open.remove(&permit) else {
            return;
        };
        match &mut self.memory {
            Memory::Exact { entries, tokens } => {
                if let Some(i) = entries.iter().rposition(|e| e.permit == permit) {
                    *tokens -= entries[i].tokens;
                    entries.remove(i);
                }
            }
            Memory::Counted { seconds } => {
                let slot = &mut seconds[(second as usize) % SECONDS];
                if slot.index == second {
                    slot.requests -= 1;
                    slot.tokens -= counted;
                }
            }
        }
    }

    /// A request ended with its tokens as counted.
    pub fn close(&mut self, permit: u64) {
        self.open.remove(&permit);
    }

    /// Switch to keeping every request (a limit now applies). Counted seconds
    /// become entries at their second's end — late rather than early, so the
    /// window never looks emptier than it is.
    pub fn make_exact(&mut self, now: Instant) {
        let Memory::Counted { seconds } = &self.memory else {
            return;
        };
        let from = self.counted_from(now);
        let mut slots: Vec<Second> = seconds
            .iter()
            .filter(|s| s.index >= from && s.requests > 0)
            .copied()
            .collect();
        slots.sort_by_key(|s| s.index);
        // Open requests keep their permits, so they can still be settled.
        let mut open: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for (permit, (second, tokens)) in &self.open {
            open.entry(*second).or_default().push((*permit, *tokens));
        }
        let mut entries = VecDeque::new();
        let mut sum = 0;
        for s in slots {
            let at = (self.origin + Duration::from_secs(s.index + 1)).min(now);
            let mine = open.remove(&s.index).unwrap_or_default();
            let mut rest = s.tokens;
            for (permit, tokens) in &mine {
                entries.push_back(Entry {
                    at,
                    tokens: *tokens,
                    permit: *permit,
                });
                rest = rest.saturating_sub(*tokens);
            }
            for i in 0..(s.requests as usize).saturating_sub(mine.len()) {
                let tokens = if i == 0 { std::mem::take(&mut rest) } else { 0 };
                entries.push_back(Entry {
                    at,
                    tokens,
                    permit: 0,
                });
            }
            sum += s.tokens - rest;
        }
        self.memory = Memory::Exact { entries, tokens: sum };
    }

    /// Switch to per-second counts (no limit applies any more).
    pub fn make_counted(&mut self) {
        let Memory::Exact { entries, .. } = &self.memory else {
            return;
        };
        let mut seconds = Box::new([Second::default(); SECONDS]);
        for e in entries {
            let index = self.second(e.at);
            let slot = &mut seconds[(index as usize) % SECONDS];
            if slot.index != index {
                *slot = Second {
                    index,
                    ..Second::default()
                };
            }
            slot.requests += 1;
            slot.tokens += e.tokens;
        }
        self.memory = Memory::Counted { seconds };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: Duration = Duration::from_secs(60);

    #[test]
    fn running_sums_follow_pushes_settles_forgets_and_the_edge() {
        let t0 = Instant::now();
        let mut w = Window::new(SPAN, true, t0);
        w.push(t0, 1, 100);
        w.push(t0 + Duration::from_secs(10), 2, 50);
        w.push(t0 + Duration::from_secs(20), 3, 10);
        assert_eq!((w.requests(t0), w.tokens(t0)), (3, 160));
        w.settle(2, 70);
        w.forget(3);
        assert_eq!((w.requests(t0), w.tokens(t0)), (2, 170));
        let later = t0 + Duration::from_secs(60);
        w.prune(later);
        assert_eq!((w.requests(later), w.tokens(later)), (1, 70));
        assert_eq!(w.leaves_at(0), Some(t0 + Duration::from_secs(70)));
    }

    #[test]
    fn an_unlimited_window_keeps_counts_not_entries() {
        let t0 = Instant::now();
        let mut w = Window::new(SPAN, false, t0);
        for permit in 0..100_000 {
            w.push(t0 + Duration::from_millis(permit / 2), permit, 3);
            w.close(permit);
        }
        let now = t0 + Duration::from_millis(50_000);
        assert_eq!((w.requests(now), w.tokens(now)), (100_000, 300_000));
        // A minute later the first seconds have left.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(w.requests(later), 20_000, "the requests of seconds 40 to 50");
        assert_eq!(w.leaves_at(0), None, "no edges are kept without a limit");
    }

    #[test]
    fn a_window_that_gets_a_limit_keeps_what_it_counted() {
        let t0 = Instant::now();
        let mut w = Window::new(SPAN, false, t0);
        w.push(t0, 1, 10);
        w.close(1);
        w.push(t0 + Duration::from_millis(1500), 2, 20);
        let now = t0 + Duration::from_secs(2);
        w.make_exact(now);
        assert!(w.is_exact());
        assert_eq!((w.requests(now), w.tokens(now)), (2, 30));
        // Entries sit at the end of their second: never earlier than they were.
        assert_eq!(w.leaves_at(0), Some(t0 + Duration::from_secs(1) + SPAN));
        w.settle(2, 5);
        assert_eq!(w.tokens(now), 15, "an open request can still be settled");
        w.make_counted();
        assert_eq!((w.requests(now), w.tokens(now)), (2, 15));
    }
}
