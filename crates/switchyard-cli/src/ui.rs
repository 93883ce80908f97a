//! What every command shows on a terminal: tables, progress bars and colour, each only
//! where it helps. Colour and bars appear only on a terminal (and colour not under
//! `NO_COLOR`), so a script or a test reading the output gets plain text.

use std::io::IsTerminal as _;
use std::time::Duration;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether standard output is a terminal.
pub(crate) fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether standard error is a terminal (progress bars go there).
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether tables printed to standard output are coloured.
pub(crate) fn colour() -> bool {
    stdout_is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// A table with `header`, coloured only on a terminal.
pub(crate) fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<Cell>,
{
    table_for(header, colour())
}

/// A table with `header`, coloured when `colour` (the live demo draws on standard error).
pub(crate) fn table_for<I, S>(header: I, colour: bool) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<Cell>,
{
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_header(header);
    if colour {
        // On a terminal of a known, sensible width, wrap cells to it rather than overflow;
        // a pseudo-terminal that reports no size gets the table unwrapped.
        table.enforce_styling();
        if table.width().is_some_and(|width| width >= 60) {
            table.set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    } else {
        // Plain text whatever the terminal says: a pipe or a test gets no escapes and a
        // stable width.
        table
            .load_preset(presets::ASCII_MARKDOWN)
            .force_no_tty()
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    table
}

/// A cell for a key or provider state, green/yellow/red by how bad it is.
pub(crate) fn state_cell(state: &str, colour: bool) -> Cell {
    let cell = Cell::new(state);
    if !colour {
        return cell;
    }
    match state {
        "available" | "AVAILABLE" | "healthy" | "closed" | "ok" => cell.fg(Color::Green),
        "cooling" | "PARTIAL_QUOTA" | "PARTIAL_INVALID" | "degraded" | "half_open" => {
            cell.fg(Color::Yellow)
        }
        "exhausted" | "invalid" | "billing_stopped" | "disabled" | "QUOTA_EXCEEDED"
        | "INVALID_KEYS" | "DISABLED" | "down" | "open" | "FAIL" => cell.fg(Color::Red),
        _ => cell,
    }
}

/// `text` in its state's colour (ANSI), for a line outside a table.
pub(crate) fn paint(text: &str, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let code = match text {
        "healthy" => "32",
        "degraded" => "33",
        _ => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A progress bar of `len` steps on standard error, hidden when it is not a terminal.
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), draw_target());
    let template = format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Standard error when it is a terminal, else nothing (a script sees plain lines instead).
pub(crate) fn draw_target() -> ProgressDrawTarget {
    if stderr_is_terminal() {
        // At most a few redraws a second, whatever the traffic.
        ProgressDrawTarget::stderr_with_hz(4)
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// `2026-11-24T00:00:00-08:00` shown in local time, `-` when absent or unreadable.
pub(crate) fn local_time(rfc3339: Option<&str>) -> String {
    rfc3339.and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok()).map_or_else(
        || "-".to_owned(),
        |at| at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %:z").to_string(),
    )
}

/// `2026-11-24T00:00:00-08:00` shortened for a table, keeping its offset.
pub(crate) fn zoned_time(rfc3339: Option<&str>) -> String {
    rfc3339
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d %H:%M:%S %:z").to_string())
}
