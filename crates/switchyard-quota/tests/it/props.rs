//! Properties of admission, settlement and release under random sequences.

use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_core::{ManualClock, Usage};
use switchyard_quota::{Estimate, Limit, Permit};

use crate::support::*;

#[derive(Clone, Debug)]
enum Step {
    Admit(u64),
    Settle(u32),
    Release,
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..40).prop_map(Step::Admit),
        2 => (0u32..60).prop_map(Step::Settle),
        2 => Just(Step::Release),
        1 => (0u64..20).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn never_admits_past_the_limit(limit in 1u64..30, steps in vec(step(), 0..200)) {
        let clock = ManualClock::default();
        let ledger = ledger_with(&clock, vec![Limit::per_minute(limit)]);
        let key = candidate("p", "k", "m");
        let mut admitted_at: Vec<u64> = Vec::new();
        let mut open: Vec<Permit> = Vec::new();
        for step in steps {
            match step {
                Step::Admit(tokens) => {
                    if let Ok(permit) = ledger.try_admit(&key, Estimate::new(tokens, 0)) {
                        admitted_at.push(clock.elapsed().as_secs());
                        open.push(permit);
                    }
                }
                Step::Settle(tokens) => {
                    if let Some(permit) = open.pop() {
                        ledger.settle_now(permit, &Usage::new(tokens, 0));
                    }
                }
                Step::Release => {
                    if let Some(permit) = open.pop() {
                        ledger.release_now(permit);
                        admitted_at.pop();
                    }
                }
                Step::Wait(by) => clock.advance(secs(by)),
            }
        }
        for &start in &admitted_at {
            let in_window = admitted_at.iter().filter(|&&at| at >= start && at < start + 60).count() as u64;
            prop_assert!(in_window <= limit, "{in_window} in the minute from {start}");
        }
    }

    #[test]
    fn settle_and_release_restore_capacity(
        limit in 100u64..2_000,
        calls in vec((1u64..100, 0u32..100, any::<bool>()), 1..50),
    ) {
        let clock = ManualClock::default();
        let ledger = ledger_with(&clock, vec![Limit::tokens_per(limit, secs(60))]);
        let key = candidate("p", "k", "m");
        let mut spent = 0u64;
        for (estimate, real, settle) in calls {
            if let Ok(permit) = ledger.try_admit(&key, Estimate::new(estimate, 0)) {
                if settle {
                    ledger.settle_now(permit, &Usage::new(real, 0));
                    spent += u64::from(real);
                } else {
                    ledger.release_now(permit);
                }
            }
            let used = ledger.summary_now(&"p".into()).keys[0].limits[0].used;
            prop_assert_eq!(used, spent, "only settled usage stays counted");
        }
    }
}
