//! Costs and daily budgets. Every answer's cost comes from its usage and its model's
//! [`Price`](crate::Price); spend adds up per route and per provider for the current day in a
//! configured time zone. A route over its budget moves to candidates whose estimated cost
//! still fits (a free model always does), and with none left refuses with `BUDGET_EXCEEDED`;
//! a provider over its budget is left out of every route.
//!
//! Money is counted whatever happens to a call: admission reserves its estimated cost against
//! the route's and provider's budgets (so concurrent calls cannot overshoot together), the
//! answer settles it by the usage seen, and a call or stream dropped before its end settles
//! what it generated (the estimate when no usage was seen).
//!
//! Spend survives restarts through a [`SpendStore`] (defined in `switchyard-core`, so the state
//! crates can implement it), written behind the requests by [`SpendWriteBehind`]. Two stores
//! ship here: [`MemorySpendStore`] and [`JsonFileSpendStore`] (one small JSON file, replaced
//! atomically).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use parking_lot::Mutex;
pub use switchyard_core::spend::{SpendDay, SpendError, SpendStore};
use switchyard_core::{Clock, ProviderId};

/// Daily budgets, in dollars, and the zone whose midnight starts a day.
#[derive(Clone, Debug)]
pub struct BudgetConfig {
    /// The zone of the budget day.
    pub time_zone: Tz,
    /// Dollars a day per route, by route name.
    pub per_route: HashMap<String, f64>,
    /// Dollars a day per provider.
    pub per_provider: HashMap<ProviderId, f64>,
}

impl BudgetConfig {
    /// No budgets yet: spend is tracked in `time_zone`'s days.
    pub fn new(time_zone: Tz) -> Self {
        Self { time_zone, per_route: HashMap::new(), per_provider: HashMap::new() }
    }
}

/// Spend kept in memory: survives a new router on the same store, not a new process.
#[derive(Default)]
pub struct MemorySpendStore {
    days: Mutex<HashMap<NaiveDate, SpendDay>>,
}

impl SpendStore for MemorySpendStore {
    fn load(&self, day: NaiveDate) -> Result<SpendDay, SpendError> {
        Ok(self.days.lock().get(&day).cloned().unwrap_or_default())
    }

    fn save(&self, spend: &SpendDay) -> Result<(), SpendError> {
        if let Some(day) = spend.day {
            self.days.lock().insert(day, spend.clone());
        }
        Ok(())
    }
}

/// The current day's spend in one JSON file, written to a temporary file and renamed over
/// the old one so a crash leaves either record, never half of one.
pub struct JsonFileSpendStore {
    path: PathBuf,
}

impl JsonFileSpendStore {
    /// A store at `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl SpendStore for JsonFileSpendStore {
    fn load(&self, day: NaiveDate) -> Result<SpendDay, SpendError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SpendDay::default());
            }
            Err(source) => return Err(SpendError::Io { path: self.path.clone(), source }),
        };
        let spend: SpendDay = serde_json::from_str(&text)
            .map_err(|source| SpendError::Parse { path: self.path.clone(), source })?;
        Ok(if spend.day == Some(day) { spend } else { SpendDay::default() })
    }

    fn save(&self, spend: &SpendDay) -> Result<(), SpendError> {
        let text = serde_json::to_string_pretty(spend)
            .map_err(|source| SpendError::Parse { path: self.path.clone(), source })?;
        // One temporary file per save, so two routers of one process (a reload) never write
        // into the same one; synced before the rename so a crash leaves a whole record.
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let n = SAVES.fetch_add(1, Ordering::Relaxed);
        let temporary = self.path.with_extension(format!("{}.{n}.tmp", std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        })();
        if written.is_err() {
            drop(std::fs::remove_file(&temporary));
        }
        written.map_err(|source| SpendError::Io { path: self.path.clone(), source })
    }
}

/// Why a candidate is out of budget for this request.
pub(crate) enum OverBudget {
    Route,
    Provider,
}

impl OverBudget {
    /// What a trace says about the skipped candidate.
    pub(crate) fn detail(&self, route: &str, provider: &ProviderId) -> String {
        match self {
            Self::Route => format!("route {route} is over its daily budget"),
            Self::Provider => format!("provider {provider} is over its daily budget"),
        }
    }
}

/// Today's spend, what calls in flight have reserved, and whether the store is behind.
/// Shared by a router and the one that replaces it on a reload
/// ([`RouterBuilder::carry_over`](crate::RouterBuilder::carry_over)), so the old router's
/// calls still in flight settle into the same day, and neither saves over the other.
#[derive(Default)]
pub(crate) struct Books {
    today: SpendDay,
    /// Estimated costs of calls admitted and not yet settled, per route. Keyed by names the
    /// configuration declares (the router resolves nothing else), so it stays small.
    reserved_route: HashMap<String, f64>,
    /// The same per provider.
    reserved_provider: HashMap<ProviderId, f64>,
    /// Spend changed since the store last saved it.
    dirty: bool,
}

/// The router's budgets and today's spend. Spend reaches the store off the request path:
/// [`Budgets::flush`] (the write-behind's thread, an explicit flush) and the last drop save it.
pub(crate) struct Budgets {
    config: BudgetConfig,
    store: Arc<dyn SpendStore>,
    clock: Arc<dyn Clock>,
    /// Nothing awaits while this lock is held; a store is written under it only when the
    /// day turns (once a day).
    books: Arc<Mutex<Books>>,
}

impl Budgets {
    /// Budgets keeping their books in `books` when given (carried over from the router this
    /// one replaces), in new ones otherwise.
    pub(crate) fn new(
        config: BudgetConfig,
        store: Arc<dyn SpendStore>,
        clock: Arc<dyn Clock>,
        books: Option<Arc<Mutex<Books>>>,
    ) -> Self {
        Self { config, store, clock, books: books.unwrap_or_default() }
    }

    /// The books, to share with the router that replaces this one.
    pub(crate) fn books(&self) -> Arc<Mutex<Books>> {
        Arc::clone(&self.books)
    }

    /// Whether `route` or `provider` has a budget.
    pub(crate) fn applies(&self, route: &str, provider: &ProviderId) -> bool {
        self.config.per_route.contains_key(route) || self.config.per_provider.contains_key(provider)
    }

    /// The route budgets' names and the providers with budgets.
    pub(crate) fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn day_of(&self, utc: DateTime<Utc>) -> NaiveDate {
        utc.with_timezone(&self.config.time_zone).date_naive()
    }

    /// Today's books, loaded from the store on the first use of each day (one read a day).
    fn with_books<R>(&self, utc: DateTime<Utc>, use_it: impl FnOnce(&mut Books) -> R) -> R {
        let day = self.day_of(utc);
        let mut books = self.books.lock();
        if books.today.day != Some(day) {
            if books.dirty {
                // Yesterday's last spend, before it is replaced: rare (once a day), small.
                if let Err(error) = self.store.save(&books.today) {
                    tracing::warn!(error = %error, "saving yesterday's spend failed");
                }
                books.dirty = false;
            }
            let mut loaded = self.store.load(day).unwrap_or_else(|error| {
                tracing::warn!(error = %error, "loading today's spend failed; starting from zero");
                SpendDay::default()
            });
            loaded.day = Some(day);
            books.today = loaded;
        }
        use_it(&mut books)
    }

    /// Whether a call costing about `estimated_cost` (unknown: `None`) fits, counting what
    /// calls in flight reserved.
    fn fits(
        books: &Books,
        config: &BudgetConfig,
        route: &str,
        provider: &ProviderId,
        estimated_cost: Option<f64>,
    ) -> Result<(), OverBudget> {
        // A free call always fits; an unknown cost fits only while under budget.
        let fits = |spent: f64, budget: f64| match estimated_cost {
            Some(cost) if cost <= 0.0 => true,
            Some(cost) => spent + cost <= budget,
            None => spent < budget,
        };
        if let Some(&budget) = config.per_provider.get(provider) {
            let spent = books.today.per_provider.get(provider.as_str()).copied().unwrap_or(0.0)
                + books.reserved_provider.get(provider).copied().unwrap_or(0.0);
            if !fits(spent, budget) {
                return Err(OverBudget::Provider);
            }
        }
        if let Some(&budget) = config.per_route.get(route) {
            let spent = books.today.per_route.get(route).copied().unwrap_or(0.0)
                + books.reserved_route.get(route).copied().unwrap_or(0.0);
            if !fits(spent, budget) {
                return Err(OverBudget::Route);
            }
        }
        Ok(())
    }

    /// Whether a call of `provider` costing about `estimated_cost` fits the budgets of
    /// `route` and `provider` today, counting reservations.
    pub(crate) fn check(
        &self,
        route: &str,
        provider: &ProviderId,
        estimated_cost: Option<f64>,
        utc: DateTime<Utc>,
    ) -> Result<(), OverBudget> {
        if !self.applies(route, provider) {
            return Ok(());
        }
        self.with_books(utc, |books| {
            Self::fits(books, &self.config, route, provider, estimated_cost)
        })
    }

    /// Checks and reserves in one step, so concurrent calls cannot together overshoot a
    /// budget: a call that fits holds its estimated cost until it settles. `None` when there
    /// is nothing to hold (a free or unpriced call).
    pub(crate) fn try_reserve(
        self: &Arc<Self>,
        route: &str,
        provider: &ProviderId,
        estimated_cost: Option<f64>,
        utc: DateTime<Utc>,
    ) -> Result<Option<SpendHold>, OverBudget> {
        let reserved = match estimated_cost {
            Some(cost) if cost > 0.0 && cost.is_finite() => cost,
            _ => {
                self.check(route, provider, estimated_cost, utc)?;
                return Ok(None);
            }
        };
        self.with_books(utc, |books| {
            Self::fits(books, &self.config, route, provider, estimated_cost)?;
            *books.reserved_route.entry(route.to_owned()).or_default() += reserved;
            *books.reserved_provider.entry(provider.clone()).or_default() += reserved;
            Ok(())
        })?;
        Ok(Some(SpendHold {
            budgets: Arc::clone(self),
            route: route.to_owned(),
            provider: provider.clone(),
            reserved,
            open: true,
        }))
    }

    /// Ends a reservation of `reserved` and adds `cost` (0 for a call that cost nothing).
    fn settle(&self, route: &str, provider: &ProviderId, reserved: f64, cost: f64) {
        let utc = self.clock.utc();
        self.with_books(utc, |books| {
            if reserved > 0.0 {
                unreserve(&mut books.reserved_route, route, reserved);
                unreserve(&mut books.reserved_provider, provider, reserved);
            }
            if cost > 0.0 && cost.is_finite() {
                *books.today.per_route.entry(route.to_owned()).or_default() += cost;
                *books.today.per_provider.entry(provider.to_string()).or_default() += cost;
                books.dirty = true;
            }
        });
    }

    /// Adds a served answer's cost that held no reservation.
    pub(crate) fn record(&self, route: &str, provider: &ProviderId, cost: f64) {
        self.settle(route, provider, 0.0, cost);
    }

    /// Saves today's spend when it changed since the last save. Blocks on the store: call
    /// it off the request path.
    ///
    /// # Errors
    /// [`SpendError`] when the store cannot be written (the change stays pending).
    pub(crate) fn flush(&self) -> Result<(), SpendError> {
        let snapshot = {
            let mut books = self.books.lock();
            if !books.dirty {
                return Ok(());
            }
            books.dirty = false;
            books.today.clone()
        };
        self.store.save(&snapshot).inspect_err(|_| {
            // Nothing is lost: the next flush carries everything again.
            self.books.lock().dirty = true;
        })
    }

    /// Today's spend and route budget.
    pub(crate) fn route_status(&self, route: &str, utc: DateTime<Utc>) -> (f64, f64) {
        let budget = self.config.per_route.get(route).copied().unwrap_or(f64::INFINITY);
        let spent = self.with_books(utc, |books| books.today.per_route.get(route).copied());
        (spent.unwrap_or(0.0), budget)
    }

    /// Today's spend.
    pub(crate) fn today(&self, utc: DateTime<Utc>) -> SpendDay {
        self.with_books(utc, |books| books.today.clone())
    }

    /// When today ends in the budget's zone.
    pub(crate) fn resets_at(&self, utc: DateTime<Utc>) -> DateTime<Utc> {
        switchyard_quota::next_midnight(self.config.time_zone, utc)
    }
}

impl Drop for Budgets {
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing::warn!(error = %error, "spend not saved when the router was dropped");
        }
    }
}

fn unreserve<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
    reserved: &mut HashMap<K, f64>,
    key: &Q,
    amount: f64,
) {
    if let Some(held) = reserved.get_mut(key) {
        *held -= amount;
        // Float dust from many adds and subtracts is not a reservation.
        if *held <= 1e-12 {
            reserved.remove(key);
        }
    }
}

/// The estimated cost of one admitted call, held against its route's and provider's
/// budgets until [`settle`](Self::settle)d or [`release`](Self::release)d. Dropped while
/// open (the caller went away, the deadline cut the call) it settles the estimate: a call
/// whose cost is unknown counts as spent, so nothing walks around a budget by hanging up.
pub(crate) struct SpendHold {
    budgets: Arc<Budgets>,
    route: String,
    provider: ProviderId,
    reserved: f64,
    open: bool,
}

impl SpendHold {
    /// The call cost `cost` dollars.
    pub(crate) fn settle(mut self, cost: f64) {
        self.open = false;
        self.budgets.settle(&self.route, &self.provider, self.reserved, cost);
    }

    /// The call cost nothing (the provider refused it before any work).
    pub(crate) fn release(mut self) {
        self.open = false;
        self.budgets.settle(&self.route, &self.provider, self.reserved, 0.0);
    }
}

impl Drop for SpendHold {
    fn drop(&mut self) {
        if self.open {
            self.budgets.settle(&self.route, &self.provider, self.reserved, self.reserved);
        }
    }
}

/// Saves a router's spend from a background thread at most every `interval`, when asked
/// ([`flush`](Self::flush)), and once more when dropped, so no request waits on the store.
/// Start it with [`Router::spend_write_behind`](crate::Router::spend_write_behind); without
/// one, spend is saved only when the router is dropped.
#[derive(Debug)]
pub struct SpendWriteBehind {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

enum Command {
    Flush(mpsc::Sender<Result<(), SpendError>>),
    Stop,
}

impl SpendWriteBehind {
    pub(crate) fn start(budgets: &Arc<Budgets>, interval: Duration) -> Result<Self, SpendError> {
        let (commands, inbox) = mpsc::channel();
        // Weak: the writer does not keep a replaced router's books alive; their drop saves.
        let budgets: Weak<Budgets> = Arc::downgrade(budgets);
        let thread = std::thread::Builder::new()
            .name("spend-write-behind".into())
            .spawn(move || {
                let save = || budgets.upgrade().map_or(Ok(()), |budgets| budgets.flush());
                loop {
                    // Real time on purpose: this paces disk writes, not budget days.
                    match inbox.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(error) = save() {
                                tracing::warn!(%error, "spend not saved; retrying");
                            }
                        }
                        Ok(Command::Flush(reply)) => drop(reply.send(save())),
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            if let Err(error) = save() {
                                tracing::warn!(%error, "spend not saved at shutdown");
                            }
                            return;
                        }
                    }
                }
            })
            .map_err(|source| SpendError::Backend(Box::new(source)))?;
        Ok(Self { commands, thread: Some(thread) })
    }

    /// Saves what changed now and waits for it.
    ///
    /// # Errors
    /// [`SpendError`] when the save failed (the change stays pending) or the thread is gone.
    pub fn flush(&self) -> Result<(), SpendError> {
        let (reply, answer) = mpsc::channel();
        let gone = || SpendError::Backend("the spend write-behind thread stopped".into());
        self.commands.send(Command::Flush(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for SpendWriteBehind {
    fn drop(&mut self) {
        drop(self.commands.send(Command::Stop));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("spend write-behind thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(store: Arc<MemorySpendStore>) -> (Arc<Budgets>, switchyard_core::ManualClock) {
        let clock = switchyard_core::ManualClock::default();
        let mut config = BudgetConfig::new(chrono_tz::UTC);
        config.per_route.insert("r".into(), 1.0);
        (Arc::new(Budgets::new(config, store, Arc::new(clock.clone()), None)), clock)
    }

    #[test]
    fn reservations_count_against_the_budget_until_settled_or_released() {
        let store = Arc::new(MemorySpendStore::default());
        let (budgets, clock) = budgets(Arc::clone(&store));
        let provider = ProviderId::new("p");
        let utc = clock.utc();
        let first = budgets.try_reserve("r", &provider, Some(0.6), utc).ok().flatten();
        let first = first.expect("fits and holds");
        assert!(budgets.try_reserve("r", &provider, Some(0.6), utc).is_err(), "0.6 is held");
        first.release();
        let second = budgets.try_reserve("r", &provider, Some(0.6), utc).ok().flatten();
        // Dropped unsettled (the caller went away): the estimate is spent.
        drop(second.expect("fits again"));
        assert_eq!(budgets.today(utc).per_route["r"], 0.6);
        assert!(budgets.try_reserve("r", &provider, Some(0.6), utc).is_err(), "0.6 is spent");
        assert!(budgets.try_reserve("r", &provider, Some(0.0), utc).is_ok(), "free always fits");
        assert_eq!(store.load(utc.date_naive()).expect("loads"), SpendDay::default(), "unsaved");
        budgets.flush().expect("saves");
        assert_eq!(store.load(utc.date_naive()).expect("loads").per_route["r"], 0.6);
    }

    #[test]
    fn a_hold_settled_after_midnight_frees_its_reservation_and_counts_on_the_new_day() {
        let store = Arc::new(MemorySpendStore::default());
        let (budgets, clock) = budgets(Arc::clone(&store));
        let provider = ProviderId::new("p");
        let hold = budgets.try_reserve("r", &provider, Some(0.9), clock.utc()).ok().flatten();
        clock.advance(std::time::Duration::from_secs(86_400));
        hold.expect("holds").settle(0.3);
        let utc = clock.utc();
        assert_eq!(budgets.today(utc).per_route["r"], 0.3);
        assert!(budgets.try_reserve("r", &provider, Some(0.7), utc).is_ok(), "nothing held");
    }

    #[test]
    fn the_json_store_keeps_one_day_and_forgets_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = JsonFileSpendStore::new(dir.path().join("spend.json"));
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        assert_eq!(store.load(day).expect("empty"), SpendDay::default());
        let mut spend = SpendDay { day: Some(day), ..SpendDay::default() };
        spend.per_route.insert("r".into(), 0.5);
        store.save(&spend).expect("saves");
        assert_eq!(store.load(day).expect("loads"), spend);
        assert_eq!(store.load(day.succ_opt().expect("next")).expect("loads"), SpendDay::default());
        std::fs::write(dir.path().join("spend.json"), "not json").expect("writes");
        assert!(matches!(store.load(day), Err(SpendError::Parse { .. })));
    }
}
