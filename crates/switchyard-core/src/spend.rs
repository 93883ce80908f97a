//! Money spent per day, and where it is kept across restarts. The facade's budgets count it;
//! a state crate (SQLite in `switchyard-store`) implements [`SpendStore`] from below, which is
//! why the trait lives here and not with the budgets.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One day's spend, in dollars.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendDay {
    /// The day, in the budget's time zone.
    pub day: Option<NaiveDate>,
    /// Spend per route.
    pub per_route: BTreeMap<String, f64>,
    /// Spend per provider.
    pub per_provider: BTreeMap<String, f64>,
}

/// Why spend could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    /// Reading or writing the store's file failed.
    #[error("spend file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a spend record.
    #[error("spend file {} is not valid JSON spend: {source}", .path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Any other store (a database) failed.
    #[error("spend store: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where spend is kept across restarts.
pub trait SpendStore: Send + Sync + 'static {
    /// The spend recorded for `day` (empty when none).
    ///
    /// # Errors
    /// [`SpendError`] when the store cannot be read.
    fn load(&self, day: NaiveDate) -> Result<SpendDay, SpendError>;
    /// Keeps `spend` as its day's record. Called off the request path by the facade's
    /// write-behind; an implementation may block.
    ///
    /// # Errors
    /// [`SpendError`] when the store cannot be written.
    fn save(&self, spend: &SpendDay) -> Result<(), SpendError>;
}

fn _object_safe(_: &dyn SpendStore) {}
