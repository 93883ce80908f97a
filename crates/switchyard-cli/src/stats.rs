//! `switchyard stats`: what the gateway's analytics log says, as tables: usage per key over
//! a window (`--since 24h`, default the last 7 days), the hourly pattern of one UTC day, and
//! the errors by class with the keys that met them.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use comfy_table::{Cell, CellAlignment};
use switchyard_core::{Clock as _, SystemClock};

use switchyard_server::api::{ErrorsView, HourlyView, UsageView};

use crate::status::GatewayArgs;
use crate::ui;

/// Arguments of `switchyard stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// How far back usage and errors go: `30m`, `24h`, `7d`, `1d12h` [default: the
    /// gateway's, 7 days].
    #[arg(long, value_parser = parse_duration)]
    since: Option<Duration>,
    /// The UTC day of the hourly pattern, `YYYY-MM-DD` [default: today].
    #[arg(long, value_parser = parse_date)]
    date: Option<chrono::NaiveDate>,
}

/// `90s`, `30m`, `24h`, `7d`, or several: `1d12h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0_u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 =
            digits.parse().map_err(|_| format!("expected a number before `{c}` in {text:?}"))?;
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            other => {
                return Err(format!("unknown unit `{other}` in {text:?}; use s, m, h, d or w"));
            }
        };
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{text:?} needs a unit after {digits}: s, m, h, d or w"));
    }
    if total == 0 {
        return Err(format!("{text:?} is not a positive duration, like 24h or 7d"));
    }
    Ok(Duration::from_secs(total))
}

fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|error| format!("{text:?} is not a date YYYY-MM-DD: {error}"))
}

/// Runs `switchyard stats`.
pub(crate) fn run(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let now = SystemClock.utc();
    let window = match args.since {
        Some(since) => {
            let start = now - chrono::Duration::from_std(since).context("--since is too long")?;
            format!("?start={}", start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        None => String::new(),
    };
    let date = args.date.unwrap_or_else(|| now.date_naive());
    let client = args.gateway.client();
    let fetched = runtime.block_on(async {
        let usage = client.get::<UsageView>(&format!("/admin/analytics/usage{window}")).await?;
        let hourly =
            client.get::<HourlyView>(&format!("/admin/analytics/hourly?date={date}")).await?;
        let errors = client.get::<ErrorsView>(&format!("/admin/analytics/errors{window}")).await?;
        Ok::<_, crate::admin_api::AdminApiError>((usage, hourly, errors))
    });
    let (usage, hourly, errors) = match fetched {
        Ok(fetched) => fetched,
        Err(error) => {
            eprintln!("switchyard stats: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    print_usage(&usage);
    print_hourly(&hourly);
    print_errors(&errors);
    Ok(ExitCode::SUCCESS)
}

/// An instant as the gateway wrote it (RFC 3339, UTC).
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn right(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

fn print_usage(usage: &UsageView) {
    println!("usage per key, {} to {}", rfc3339(usage.start), rfc3339(usage.end));
    let mut table = ui::table([
        "provider",
        "key",
        "attempts",
        "ok",
        "failed",
        "success",
        "avg ms",
        "429s",
        "tokens in",
        "tokens out",
        "cost $",
    ]);
    for key in &usage.keys {
        let rate = if key.requests == 0 { 0.0 } else { key.successes as f64 / key.requests as f64 };
        table.add_row(vec![
            Cell::new(&key.provider),
            Cell::new(&key.key),
            right(key.requests),
            right(key.successes),
            right(key.failures),
            right(format!("{:.0}%", rate * 100.0)),
            right(format!("{:.1}", key.avg_latency_ms)),
            right(key.quota_errors),
            right(key.prompt_tokens),
            right(key.completion_tokens),
            right(format!("{:.4}", key.cost)),
        ]);
    }
    println!("{table}");
    if !usage.clients.is_empty() {
        let mut table = ui::table(["client", "requests", "ok", "cost $"]);
        for client in &usage.clients {
            table.add_row(vec![
                Cell::new(&client.client),
                right(client.requests),
                right(client.successes),
                right(format!("{:.4}", client.cost)),
            ]);
        }
        println!("{table}");
    }
}

fn print_hourly(hourly: &HourlyView) {
    println!("hourly pattern, {} (UTC)", hourly.date);
    let mut table =
        ui::table(["hour", "provider", "key", "attempts", "ok", "failed", "avg ms", ""]);
    let busiest = hourly.hours.iter().map(|hour| hour.requests).max().unwrap_or(0).max(1);
    for hour in &hourly.hours {
        let label = hour.hour.format("%H:00").to_string();
        // A bar of up to 20 characters, relative to the busiest hour shown.
        let width = usize::try_from(hour.requests * 20 / busiest).unwrap_or(20);
        table.add_row(vec![
            Cell::new(label),
            Cell::new(&hour.provider),
            Cell::new(&hour.key),
            right(hour.requests),
            right(hour.successes),
            right(hour.failures),
            right(format!("{:.1}", hour.avg_latency_ms)),
            Cell::new("#".repeat(width)),
        ]);
    }
    println!("{table}");
}

fn print_errors(errors: &ErrorsView) {
    println!("errors by class, {} to {}", rfc3339(errors.start), rfc3339(errors.end));
    let mut table = ui::table(["class", "count", "keys"]);
    for row in &errors.errors {
        table.add_row(vec![
            Cell::new(&row.class),
            right(row.count),
            Cell::new(row.keys.join(", ")),
        ]);
    }
    println!("{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_every_unit_and_refuse_nonsense() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert!(parse_duration("12").expect_err("no unit").contains("needs a unit"));
        assert!(parse_duration("3y").expect_err("bad unit").contains("unknown unit"));
        assert!(parse_duration("0h").expect_err("zero").contains("not a positive"));
        assert!(parse_duration("h").expect_err("no number").contains("expected a number"));
        assert!(parse_date("2026-13-01").is_err());
    }
}
