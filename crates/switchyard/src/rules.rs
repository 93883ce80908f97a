//! The routing rules: which candidates of a route a request may not use at all (an operator
//! disabled the key, the model takes no images, a tag pins another provider, a budget is
//! spent), and the tiers a strategy's ranking is put in (the request's own provider order, a
//! preferred provider, providers that failed this request, free before paid, most headroom
//! first). A new rule goes here:
//! the cascade calls [`rule_out`] once before its first ranking and [`tier`] after each.

use chrono::{DateTime, Utc};
use switchyard_core::{ChatRequest, ProviderId};
use switchyard_quota::{Estimate, QuotaLedger};

use crate::budget::Budgets;
use crate::disabled::DisabledKeys;
use crate::state::Route;
use crate::trace::{Skip, Trace};
use crate::verdict::{Verdict, Verdicts};

/// The tag that pins a request to one provider: `provider:groq`.
const PIN_TAG: &str = "provider:";
/// The tag that orders providers for one request: `provider-order:groq,openai` tries groq's
/// candidates, then openai's, then the route's others.
const ORDER_TAG: &str = "provider-order:";

/// What the rules read besides the route and the request.
pub(crate) struct Context<'a> {
    pub(crate) disabled: &'a DisabledKeys,
    /// The budgets, when configured, and the time now.
    pub(crate) budgets: Option<(&'a Budgets, DateTime<Utc>)>,
    pub(crate) estimate: Estimate,
}

/// Rules out the candidates this request may not use, before any ranking. True when a budget
/// is why none is left.
pub(crate) fn rule_out(
    route: &Route,
    request: &ChatRequest,
    context: &Context<'_>,
    verdicts: &mut Verdicts,
    trace: &mut Trace,
) -> bool {
    unsuitable(route, request, verdicts, trace);
    disabled(context.disabled, route, verdicts, trace);
    match context.budgets {
        Some((budgets, utc)) => over_budget(budgets, route, context.estimate, verdicts, trace, utc),
        None => false,
    }
}

/// A model that takes no images for a request with one, another provider than a tag pins.
/// Costs a scan of the messages and tags, and nothing more when neither applies.
fn unsuitable(route: &Route, request: &ChatRequest, verdicts: &mut Verdicts, trace: &mut Trace) {
    let pinned = request.tags.iter().find_map(|tag| tag.strip_prefix(PIN_TAG));
    let needs_vision = request.has_image();
    if pinned.is_none() && !needs_vision {
        return;
    }
    for (idx, slot) in route.slots().iter().enumerate() {
        let detail = if needs_vision && slot.facts().vision == Some(false) {
            "the model takes no images".to_owned()
        } else if let Some(provider) = pinned
            && slot.candidate().provider.as_str() != provider
        {
            format!("the request is pinned to provider {provider}")
        } else {
            continue;
        };
        verdicts.set(idx, Verdict::Failed);
        trace.skip(slot.candidate(), Skip::Unsuitable { detail });
    }
}

/// The candidates whose key an operator disabled.
fn disabled(disabled: &DisabledKeys, route: &Route, verdicts: &mut Verdicts, trace: &mut Trace) {
    if disabled.is_empty() {
        return;
    }
    for (idx, slot) in route.slots().iter().enumerate() {
        if verdicts.is_open(idx) && disabled.contains(slot.candidate()) {
            verdicts.set(idx, Verdict::Invalid);
            trace.skip(slot.candidate(), Skip::Disabled);
        }
    }
}

/// The candidates whose estimated cost no longer fits a budget; true when that leaves none,
/// and a budget is why.
fn over_budget(
    budgets: &Budgets,
    route: &Route,
    estimate: Estimate,
    verdicts: &mut Verdicts,
    trace: &mut Trace,
    utc: DateTime<Utc>,
) -> bool {
    let mut n_over = 0;
    for (idx, slot) in route.slots().iter().enumerate() {
        if !verdicts.is_open(idx) {
            continue;
        }
        let provider = &slot.candidate().provider;
        let cost = slot.estimated_cost(estimate);
        let detail = match budgets.check(route.name(), provider, cost, utc) {
            Ok(()) => continue,
            Err(over) => over.detail(route.name(), provider),
        };
        n_over += 1;
        verdicts.set(idx, Verdict::OverBudget);
        trace.skip(slot.candidate(), Skip::Unsuitable { detail });
    }
    n_over > 0 && verdicts.all_decided()
}

/// A candidate's tiers, most significant first: its rank in the request's provider order,
/// not the preferred provider, failed this request, paid under free-first; then its headroom
/// (more first).
type TierKey = (usize, bool, bool, bool, f64);

/// Puts a strategy's ranking in tiers: the providers a request's [`ORDER_TAG`] lists first,
/// in its order (unlisted ones after them); then a preferred provider; providers that already
/// failed this request (a server error that outlasted its retry) after every other, paid
/// ones included, since serving beats saving; free before paid; then, among free
/// candidates, the most headroom first (a candidate whose limits are not known yet counts as
/// untouched, so it is tried and learned). The sort is stable: the strategy's order holds
/// within each tier and among equals. Costs nothing when the route asks for none of it;
/// otherwise one headroom read per free candidate (nothing while the ledger knows no limit).
pub(crate) fn tier(
    route: &Route,
    request: &ChatRequest,
    open: &[usize],
    shunned: &[ProviderId],
    order: &mut [usize],
    ledger: &dyn QuotaLedger,
) {
    // A client's order is short (the gateway bounds it); unlisted providers share the last
    // rank. Read once per ranking, and only when the tag is there.
    let asked: Option<Vec<&str>> = request
        .tags
        .iter()
        .find_map(|tag| tag.strip_prefix(ORDER_TAG))
        .map(|list| list.split(',').map(str::trim).filter(|name| !name.is_empty()).collect());
    let asked_rank = |provider: &ProviderId| -> usize {
        asked.as_ref().map_or(0, |asked| {
            asked.iter().position(|name| *name == provider.as_str()).unwrap_or(asked.len())
        })
    };
    // Free-first needs a paid candidate to put last. Spreading reads each free candidate's
    // headroom from the ledger, whichever it is (a ledger that knows no limit answers `None`,
    // and the candidate counts as having all of its room).
    let spread = route.spreads().then_some(ledger);
    let free_first = route.free_first();
    if asked.is_none()
        && route.prefer_provider().is_none()
        && !free_first
        && spread.is_none()
        && shunned.is_empty()
    {
        return;
    }
    if order.len() < 2 {
        return;
    }
    let key = |rank_idx: usize| -> TierKey {
        let Some(slot) = open.get(rank_idx).map(|&idx| &route.slots()[idx]) else {
            return (usize::MAX, true, true, true, 0.0);
        };
        let provider = &slot.candidate().provider;
        let elsewhere = route.prefer_provider().is_some_and(|preferred| provider != preferred);
        let paid = slot.is_paid();
        let failed = shunned.contains(provider);
        let headroom = match spread {
            Some(ledger) if !paid => ledger.headroom(slot.candidate()).unwrap_or(1.0),
            _ => 0.0,
        };
        (asked_rank(provider), elsewhere, failed, paid && free_first, headroom)
    };
    if spread.is_none() {
        order.sort_by_key(|&rank_idx| {
            let (asked, elsewhere, failed, paid, _) = key(rank_idx);
            (asked, elsewhere, failed, paid)
        });
        return;
    }
    // Headroom is read once per candidate, not once per comparison.
    let mut keyed: Vec<(TierKey, usize)> =
        order.iter().map(|&rank_idx| (key(rank_idx), rank_idx)).collect();
    keyed.sort_by(|(a, _), (b, _)| {
        (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)).then(b.4.total_cmp(&a.4))
    });
    for (slot, (_, rank_idx)) in order.iter_mut().zip(keyed) {
        *slot = rank_idx;
    }
}
