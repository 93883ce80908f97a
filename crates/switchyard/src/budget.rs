//! Costs and daily budgets. Every answer's cost comes from its usage and its model's
//! [`Price`](crate::Price); spend adds up per route and per provider for the current day in a
//! configured time zone. A route over its budget moves to candidates whose estimated cost
//! still fits (a free model always does), and with none left refuses with `BUDGET_EXCEEDED`;
//! a provider over its budget is left out of every route.
//!
//! Spend survives restarts through a [`SpendStore`] (defined in `switchyard-core`, so the state
//! crates can implement it). Two ship here: [`MemorySpendStore`] and [`JsonFileSpendStore`] (one
//! small JSON file, replaced atomically).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use parking_lot::Mutex;
use switchyard_core::ProviderId;
pub use switchyard_core::spend::{SpendDay, SpendError, SpendStore};

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
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|source| SpendError::Io { path: self.path.clone(), source })
    }
}

/// Why a candidate is out of budget for this request.
pub(crate) enum OverBudget {
    Route,
    Provider,
}

/// The router's budgets and today's spend.
pub(crate) struct Budgets {
    config: BudgetConfig,
    store: Arc<dyn SpendStore>,
    /// Nothing awaits while this lock is held.
    today: Mutex<SpendDay>,
}

impl Budgets {
    pub(crate) fn new(config: BudgetConfig, store: Arc<dyn SpendStore>) -> Self {
        Self { config, store, today: Mutex::new(SpendDay::default()) }
    }

    fn day_of(&self, utc: DateTime<Utc>) -> NaiveDate {
        utc.with_timezone(&self.config.time_zone).date_naive()
    }

    /// Today's record, loaded from the store on the first use of each day.
    fn with_today<R>(&self, utc: DateTime<Utc>, use_it: impl FnOnce(&mut SpendDay) -> R) -> R {
        let day = self.day_of(utc);
        let mut today = self.today.lock();
        if today.day != Some(day) {
            let mut loaded = self.store.load(day).unwrap_or_else(|error| {
                tracing::warn!(error = %error, "loading today's spend failed; starting from zero");
                SpendDay::default()
            });
            loaded.day = Some(day);
            *today = loaded;
        }
        use_it(&mut today)
    }

    /// Whether a call of `provider` costing about `estimated_cost` (unknown: `None`) fits the
    /// budgets of `route` and `provider` today.
    pub(crate) fn check(
        &self,
        route: &str,
        provider: &ProviderId,
        estimated_cost: Option<f64>,
        utc: DateTime<Utc>,
    ) -> Result<(), OverBudget> {
        let route_budget = self.config.per_route.get(route);
        let provider_budget = self.config.per_provider.get(provider);
        if route_budget.is_none() && provider_budget.is_none() {
            return Ok(());
        }
        self.with_today(utc, |today| {
            // A free call always fits; an unknown cost fits only while under budget.
            let fits = |spent: f64, budget: f64| match estimated_cost {
                Some(cost) if cost <= 0.0 => true,
                Some(cost) => spent + cost <= budget,
                None => spent < budget,
            };
            if let Some(&budget) = provider_budget
                && !fits(today.per_provider.get(provider.as_str()).copied().unwrap_or(0.0), budget)
            {
                return Err(OverBudget::Provider);
            }
            if let Some(&budget) = route_budget
                && !fits(today.per_route.get(route).copied().unwrap_or(0.0), budget)
            {
                return Err(OverBudget::Route);
            }
            Ok(())
        })
    }

    /// Adds a served answer's cost and keeps the record.
    pub(crate) fn record(&self, route: &str, provider: &ProviderId, cost: f64, utc: DateTime<Utc>) {
        if cost <= 0.0 {
            return;
        }
        let snapshot = self.with_today(utc, |today| {
            *today.per_route.entry(route.to_owned()).or_default() += cost;
            *today.per_provider.entry(provider.to_string()).or_default() += cost;
            today.clone()
        });
        if let Err(error) = self.store.save(&snapshot) {
            tracing::warn!(error = %error, "saving spend failed");
        }
    }

    /// Today's spend and route budget.
    pub(crate) fn route_status(&self, route: &str, utc: DateTime<Utc>) -> (f64, f64) {
        let budget = self.config.per_route.get(route).copied().unwrap_or(f64::INFINITY);
        let spent = self.with_today(utc, |today| today.per_route.get(route).copied());
        (spent.unwrap_or(0.0), budget)
    }

    /// Today's spend.
    pub(crate) fn today(&self, utc: DateTime<Utc>) -> SpendDay {
        self.with_today(utc, |today| today.clone())
    }

    /// When today ends in the budget's zone.
    pub(crate) fn resets_at(&self, utc: DateTime<Utc>) -> DateTime<Utc> {
        switchyard_quota::next_midnight(self.config.time_zone, utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
