//! [`AnalyticsWriter`]: events go from the request path to the disk without the request ever
//! waiting. [`AnalyticsWriter::record`] only counts and queues; a thread of the writer's own
//! (SQLite calls block) writes queued events in batches and applies the retention.
//!
//! Memory is bounded: at most [`AnalyticsWriterConfig::capacity`] events are held between
//! `record` and their commit, queued or in the batch being written. Past that, an event is
//! dropped and counted rather than waited for: losing a log line under overload is better
//! than slowing every request behind the disk. A batch that fails to write is logged, counted
//! and kept for the next try, so a passing lock or a full disk loses nothing until the bound
//! is reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use switchyard_core::Clock;

use super::{Analytics, AnalyticsEvent};
use crate::error::StoreError;

/// How the [`AnalyticsWriter`] batches and how long it keeps events. Plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyticsWriterConfig {
    /// The most events held between `record` and their commit; past it events are dropped
    /// and counted. Default 10,000.
    pub capacity: usize,
    /// A batch is written as soon as this many events are queued. A value above `capacity`
    /// leaves only the interval (and [`AnalyticsWriter::flush`]) to write. Default 500.
    pub batch_size: usize,
    /// Queued events are written at the latest this long after the first of them arrived
    /// (on the writer's clock), and a failed batch is retried after it. Default 1 second.
    pub flush_interval: Duration,
    /// Events older than this are deleted. Default 30 days.
    pub retention: Duration,
    /// How often the retention runs after the first time, at start. Default 1 hour; at least
    /// a second.
    pub prune_interval: Duration,
}

impl Default for AnalyticsWriterConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

/// Counters shared by the recorders and the thread.
#[derive(Debug, Default)]
struct Counters {
    /// Events recorded and not yet committed (or given up).
    pending: AtomicUsize,
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    pruned: AtomicU64,
}

impl Counters {
    fn release(&self, n_events: usize) {
        self.pending.fetch_sub(n_events, Ordering::SeqCst);
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "nearly every message is an event; boxing it would add an allocation per record"
)]
enum Command {
    Event(AnalyticsEvent),
    Flush(mpsc::Sender<Result<(), StoreError>>),
    Stop,
}

/// Records analytics events off the request path and writes them in batches on a thread of
/// its own. At most `capacity` events wait between [`record`](Self::record) and their commit;
/// past that, events are dropped and counted, never waited for. A failed batch is logged,
/// counted and retried. Share it behind an `Arc`: `record` takes `&self`. Dropping it writes
/// what is queued and stops the thread (blocking until it has).
#[derive(Debug)]
pub struct AnalyticsWriter {
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    capacity: usize,
    thread: Option<JoinHandle<()>>,
}

impl AnalyticsWriter {
    /// Starts the writer thread on `analytics` (its own connection; open another
    /// [`Analytics`] on the same file for reports). The retention runs at once, then every
    /// `prune_interval`, deleting events older than `clock.utc() - retention`.
    ///
    /// # Errors
    /// [`StoreError::WriterStart`] when the thread cannot be started.
    pub fn start(
        analytics: Analytics,
        clock: Arc<dyn Clock>,
        config: AnalyticsWriterConfig,
    ) -> Result<Self, StoreError> {
        let (commands, inbox) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let capacity = config.capacity;
        let worker = Worker {
            next_prune: clock.utc(),
            analytics,
            clock,
            counters: Arc::clone(&counters),
            batch: Vec::with_capacity(config.batch_size.min(config.capacity)),
            flush_due: None,
            backoff_until: None,
            config,
        };
        let thread = std::thread::Builder::new()
            .name("analytics-writer".into())
            .spawn(move || worker.run(&inbox))
            .map_err(|source| StoreError::WriterStart { source })?;
        Ok(Self { commands, counters, capacity, thread: Some(thread) })
    }

    /// Queues `event` for writing. Never blocks: when `capacity` events are already waiting
    /// (or the thread is gone) the event is dropped, counted in [`dropped`](Self::dropped),
    /// and `false` is returned.
    pub fn record(&self, event: AnalyticsEvent) -> bool {
        let admitted = self
            .counters
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |pending| {
                (pending < self.capacity).then_some(pending + 1)
            })
            .is_ok();
        if !admitted {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.commands.send(Command::Event(event)).is_err() {
            self.counters.release(1);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Writes everything recorded before this call and waits for it (blocking: from async
    /// code call it in `spawn_blocking`). Also runs the retention if it is due.
    ///
    /// # Errors
    /// The [`StoreError`] of the write when it failed (the events stay queued for the next
    /// try), [`StoreError::WriterStopped`] when the thread is gone.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, answer) = mpsc::channel();
        self.commands.send(Command::Flush(reply)).map_err(|_| StoreError::WriterStopped)?;
        answer.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Events dropped because the queue was full or the thread gone, plus those still
    /// unwritten at shutdown.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Events committed to the file.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::SeqCst)
    }

    /// Failed batch writes and retention runs (each logged).
    pub fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Events deleted by the retention.
    pub fn pruned(&self) -> u64 {
        self.counters.pruned.load(Ordering::Relaxed)
    }

    /// Events recorded and not yet committed.
    pub fn pending(&self) -> usize {
        self.counters.pending.load(Ordering::SeqCst)
    }
}

impl Drop for AnalyticsWriter {
    fn drop(&mut self) {
        drop(self.commands.send(Command::Stop));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("analytics writer thread panicked");
        }
    }
}

/// The thread's side.
struct Worker {
    analytics: Analytics,
    clock: Arc<dyn Clock>,
    config: AnalyticsWriterConfig,
    counters: Arc<Counters>,
    batch: Vec<AnalyticsEvent>,
    /// When the queued batch must be written, on the clock.
    flush_due: Option<Instant>,
    /// After a failed write, no size-triggered retry before this.
    backoff_until: Option<Instant>,
    next_prune: DateTime<Utc>,
}

impl Worker {
    fn run(mut self, inbox: &mpsc::Receiver<Command>) {
        self.prune_if_due();
        loop {
            match inbox.recv_timeout(self.wait()) {
                Ok(Command::Event(event)) => {
                    if self.flush_due.is_none() {
                        self.flush_due = Some(later(self.clock.now(), self.config.flush_interval));
                    }
                    self.batch.push(event);
                    let backing_off =
                        self.backoff_until.is_some_and(|until| self.clock.now() < until);
                    if self.batch.len() >= self.config.batch_size && !backing_off {
                        drop(self.write());
                    }
                }
                Ok(Command::Flush(reply)) => {
                    let written = self.write();
                    self.prune_if_due();
                    drop(reply.send(written));
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    if self.write().is_err() {
                        let lost = self.batch.len();
                        tracing::error!(lost, "analytics events not written at shutdown");
                        self.counters.dropped.fetch_add(stored_count(lost), Ordering::Relaxed);
                        self.counters.release(lost);
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.flush_due.is_some_and(|due| self.clock.now() >= due) {
                drop(self.write());
            }
            self.prune_if_due();
        }
    }

    /// How long to wait for the next command: until the batch is due or the retention is,
    /// at most a `flush_interval` (at least a millisecond, so a zero interval cannot spin).
    fn wait(&self) -> Duration {
        let now = self.clock.now();
        let mut wait = self.config.flush_interval;
        if let Some(due) = self.flush_due {
            wait = wait.min(due.saturating_duration_since(now));
        }
        let to_prune = (self.next_prune - self.clock.utc()).to_std().unwrap_or(Duration::ZERO);
        wait.min(to_prune).max(Duration::from_millis(1))
    }

    /// Writes the batch; on failure keeps it for the next try, after a `flush_interval`.
    fn write(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            self.flush_due = None;
            return Ok(());
        }
        match self.analytics.insert_batch(&self.batch) {
            Ok(()) => {
                let n_events = self.batch.len();
                self.batch.clear();
                // Released before counted: whoever sees the count also sees the room.
                self.counters.release(n_events);
                self.counters.written.fetch_add(stored_count(n_events), Ordering::SeqCst);
                self.flush_due = None;
                self.backoff_until = None;
                Ok(())
            }
            Err(error) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, queued = self.batch.len(), "analytics batch not written; will retry");
                let retry_at = later(self.clock.now(), self.config.flush_interval);
                self.flush_due = Some(retry_at);
                self.backoff_until = Some(retry_at);
                Err(error)
            }
        }
    }

    fn prune_if_due(&mut self) {
        let now = self.clock.utc();
        if now < self.next_prune {
            return;
        }
        let every = self.config.prune_interval.max(Duration::from_secs(1));
        self.next_prune =
            now.checked_add_signed(to_delta(every)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let cutoff = now
            .checked_sub_signed(to_delta(self.config.retention))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match self.analytics.prune(cutoff) {
            Ok(n_deleted) => {
                self.counters.pruned.fetch_add(stored_count(n_deleted), Ordering::Relaxed);
                if n_deleted > 0 {
                    tracing::debug!(n_deleted, %cutoff, "old analytics events deleted");
                }
            }
            Err(error) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "analytics retention failed; will retry");
            }
        }
    }
}

/// `now + by`, or a year on when that overflows (an interval that long never comes due).
fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).unwrap_or(now + Duration::from_secs(365 * 24 * 3600))
}

fn to_delta(duration: Duration) -> TimeDelta {
    // Durations past ~292 million years do not fit; such a retention means "forever".
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

fn stored_count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
