//! [`WriteBehind`]: the background thread that saves a [`MemoryLedger`]'s changes to a
//! [`LedgerStore`] at a fixed interval, so admission never waits on a disk.
//!
//! Loss bound: a process killed with `kill -9` loses the changes made after the last save
//! began: at most one `interval` plus the time one save takes.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::QuotaError;
use crate::memory::MemoryLedger;
use crate::persist::LedgerStore;

enum Command {
    Flush(mpsc::Sender<Result<(), QuotaError>>),
    Stop,
}

/// Saves a [`MemoryLedger`]'s changes to a [`LedgerStore`] from a background thread every
/// `interval`, when asked, and once more when dropped.
#[derive(Debug)]
pub struct WriteBehind {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBehind {
    /// Starts saving `ledger`'s changes to `store` every `interval`.
    ///
    /// # Errors
    /// [`QuotaError::Store`] when the thread cannot be started.
    pub fn start<S: LedgerStore>(
        ledger: Arc<MemoryLedger>,
        mut store: S,
        interval: Duration,
    ) -> Result<Self, QuotaError> {
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("quota-write-behind".into())
            .spawn(move || {
                let mut save = || {
                    let snapshot = ledger.export(false);
                    if snapshot.buckets.is_empty() && snapshot.keys.is_empty() {
                        return Ok(());
                    }
                    store.save(&snapshot).map_err(|source| {
                        // Nothing is lost: the next save carries everything again.
                        ledger.mark_changed();
                        QuotaError::Store { source: Box::new(source) }
                    })
                };
                loop {
                    // Real time on purpose: this paces disk writes, not quota windows.
                    match inbox.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(error) = save() {
                                tracing::warn!(%error, "quota state not saved; retrying");
                            }
                        }
                        Ok(Command::Flush(reply)) => {
                            drop(reply.send(save()));
                        }
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            if let Err(error) = save() {
                                tracing::warn!(%error, "quota state not saved at shutdown");
                            }
                            return;
                        }
                    }
                }
            })
            .map_err(|source| QuotaError::Store { source: Box::new(source) })?;
        Ok(Self { commands, thread: Some(thread) })
    }

    /// Saves what changed now and waits for it.
    ///
    /// # Errors
    /// [`QuotaError::Store`] when the save failed (the changes stay pending) or the thread
    /// is gone.
    pub fn flush(&self) -> Result<(), QuotaError> {
        let (reply, answer) = mpsc::channel();
        let gone = || QuotaError::Store { source: "write-behind thread stopped".into() };
        self.commands.send(Command::Flush(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        drop(self.commands.send(Command::Stop));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("quota write-behind thread panicked");
        }
    }
}
