//! Learned scores kept in the `[state] path` file next to the quota counts: restored into the
//! scorer when the configuration is built, saved from a background thread every half minute,
//! before a reload and once more at shutdown. So a restarted gateway (and `keys test`, which
//! seeds the same file) starts knowing which keys work.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use switchyard_core::Clock;
use switchyard_score::{AdaptiveScorer, ScoreError, StatsStore as _};
use switchyard_store::SqliteStore;

/// How often the scores are saved: learning is slow, and a crash loses at most this much.
const SAVE_EVERY: Duration = Duration::from_secs(30);

enum Command {
    Flush(mpsc::Sender<Result<usize, ScoreError>>),
    Stop,
}

/// Saves a scorer's statistics to the state file from a background thread.
pub(crate) struct ScoreSaver {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScoreSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoreSaver").finish_non_exhaustive()
    }
}

/// A scorer restored from `file`, and the saver that keeps the file up to date. A snapshot
/// that cannot be read is reported in `warnings` and the scorer starts fresh: scores are
/// relearned in minutes, and refusing to start over them would stop every request.
///
/// # Errors
/// The file cannot be opened as a state file, or the saver thread cannot start.
pub(crate) fn restore(
    file: &Path,
    clock: Arc<dyn Clock>,
    warnings: &mut Vec<String>,
) -> Result<(Arc<AdaptiveScorer>, ScoreSaver), String> {
    let mut store = SqliteStore::open(file).map_err(|error| error.to_string())?;
    let scorer = Arc::new(AdaptiveScorer::new(clock));
    match store.restore_into(scorer.as_ref()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(file = %file.display(), candidates = n, "learned scores restored"),
        Err(error) => warnings.push(format!(
            "learned scores in {} not restored ({error}); starting fresh",
            file.display()
        )),
    }
    let saver = ScoreSaver::start(Arc::clone(&scorer), store).map_err(|error| error.to_string())?;
    Ok((scorer, saver))
}

impl ScoreSaver {
    fn start(scorer: Arc<AdaptiveScorer>, mut store: SqliteStore) -> std::io::Result<Self> {
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new().name("score-saver".into()).spawn(move || {
            let mut save = || {
                if scorer.is_empty() {
                    return Ok(0);
                }
                store.save_from(scorer.as_ref())
            };
            loop {
                // Real time on purpose: this paces disk writes, not anything the router decides.
                match inbox.recv_timeout(SAVE_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(error) = save() {
                            tracing::warn!(%error, "learned scores not saved; retrying");
                        }
                    }
                    Ok(Command::Flush(reply)) => drop(reply.send(save())),
                    Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        if let Err(error) = save() {
                            tracing::warn!(%error, "learned scores not saved at shutdown");
                        }
                        return;
                    }
                }
            }
        })?;
        Ok(Self { commands, thread: Some(thread) })
    }

    /// Saves now and says how many candidates were written.
    ///
    /// # Errors
    /// The store's error, or a stopped saver.
    pub(crate) fn flush(&self) -> Result<usize, String> {
        let (reply, answer) = mpsc::channel();
        self.commands.send(Command::Flush(reply)).map_err(|_| "the score saver stopped")?;
        answer
            .recv()
            .map_err(|_| "the score saver stopped".to_owned())?
            .map_err(|error| error.to_string())
    }
}

impl Drop for ScoreSaver {
    fn drop(&mut self) {
        drop(self.commands.send(Command::Stop));
        if let Some(thread) = self.thread.take() {
            drop(thread.join());
        }
    }
}
