//! `switchyard status`: the gateway's admin status as a table, per provider and key: state,
//! quota used of its limit, when it resets (in the provider's zone and in local time) and
//! the learned score. The exit code is for cron and monitoring: 0 healthy, 1 degraded (every
//! route can still serve), 2 down (some route cannot), and 2 when the gateway cannot be
//! asked (unreachable, wrong token), with the reason on standard error.

use std::process::ExitCode;

use anyhow::Context as _;
use comfy_table::{Cell, Table};

use switchyard_server::api::StatusView;

use crate::admin_api::{AdminClient, Token};
use crate::ui;

/// Where the gateway is and how to get in; shared by `status` and `stats`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's base URL.
    #[arg(long, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// The admin token (`[server] admin_token`).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<Token>,
}

impl GatewayArgs {
    /// A client of this gateway.
    pub(crate) fn client(&self) -> AdminClient {
        AdminClient::new(&self.url, self.admin_token.clone())
    }
}

/// Arguments of `switchyard status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Print the gateway's JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs `switchyard status`.
pub(crate) fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = args.gateway.client();
    let fetched = runtime.block_on(async {
        if args.json {
            client.get::<serde_json::Value>("/admin/status").await.map(|json| (None, Some(json)))
        } else {
            client.get::<StatusView>("/admin/status").await.map(|view| (Some(view), None))
        }
    });
    let (view, json) = match fetched {
        Ok(fetched) => fetched,
        Err(error) => {
            eprintln!("switchyard status: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let health = if let Some(json) = json {
        println!("{}", serde_json::to_string_pretty(&json).context("printing the status")?);
        json["health"].as_str().unwrap_or_default().to_owned()
    } else {
        let view = view.expect("invariant: a table view when --json is not given");
        print_status(&view);
        view.health
    };
    Ok(ExitCode::from(exit_code(&health)))
}

/// 0 healthy, 1 degraded, 2 down (or a health this version does not know).
pub(crate) fn exit_code(health: &str) -> u8 {
    match health {
        "healthy" => 0,
        "degraded" => 1,
        _ => 2,
    }
}

fn print_status(view: &StatusView) {
    let colour = ui::colour();
    println!(
        "gateway health: {}  (at {})",
        ui::paint(&view.health, colour),
        ui::local_time(Some(&view.generated_at))
    );
    let mut routes = ui::table(["route", "can serve", "available / candidates"]);
    for route in &view.routes {
        routes.add_row(vec![
            Cell::new(&route.name),
            ui::state_cell(if route.can_serve { "ok" } else { "FAIL" }, colour),
            Cell::new(format!("{} / {}", route.available, route.candidates)),
        ]);
    }
    println!("{routes}");
    println!("{}", key_table(view, colour));
    for alert in &view.alerts {
        println!("alert {}: {}", alert.kind, alert.message);
    }
}

/// The per provider, key and model table, also drawn live by the demo.
pub(crate) fn key_table(view: &StatusView, colour: bool) -> Table {
    let mut table = ui::table_for(
        [
            "provider",
            "key",
            "state",
            "model",
            "quota used/limit",
            "resets / until (provider zone)",
            "local time",
            "score",
        ],
        colour,
    );
    for provider in &view.providers {
        for key in &provider.keys {
            let key_label = format!("{} ({})", key.id, key.fingerprint);
            let state = match &key.reason {
                Some(reason) if key.state != "available" => format!("{} {reason}", key.state),
                _ => key.state.clone(),
            };
            for (model_idx, model) in key.models.iter().enumerate() {
                let quota: Vec<String> = model
                    .limits
                    .iter()
                    .map(|limit| match &limit.learned {
                        // A learned limit says so, with its evidence.
                        Some(learned) => format!(
                            "{} {}/{} (learned {} {}: from {} accepted, {}{})",
                            limit.name,
                            limit.used,
                            limit.limit,
                            learned.window,
                            learned.scope,
                            learned.from_accepted,
                            learned.source,
                            learned.hint.as_deref().map_or_else(String::new, |h| format!(", {h}")),
                        ),
                        None => format!("{} {}/{}", limit.name, limit.used, limit.limit),
                    })
                    .collect();
                // The moment that matters: when an unavailable key comes back, else the
                // first window reset.
                let at = key.until.as_deref().or(model.until.as_deref()).or_else(|| {
                    model.limits.iter().filter_map(|limit| limit.resets_at.as_deref()).min()
                });
                let first = model_idx == 0;
                table.add_row(vec![
                    Cell::new(if first { provider.name.as_str() } else { "" }),
                    Cell::new(if first { key_label.as_str() } else { "" }),
                    if first { ui::state_cell(&state, colour) } else { Cell::new("") },
                    Cell::new(&model.model),
                    Cell::new(if quota.is_empty() { "-".to_owned() } else { quota.join(", ") }),
                    Cell::new(ui::zoned_time(at)),
                    Cell::new(ui::local_time(at)),
                    Cell::new(model.score.map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"))),
                ]);
            }
            if key.models.is_empty() {
                table.add_row(vec![
                    Cell::new(&provider.name),
                    Cell::new(&key_label),
                    ui::state_cell(&state, colour),
                    Cell::new("-"),
                    Cell::new("-"),
                    Cell::new(ui::zoned_time(key.until.as_deref())),
                    Cell::new(ui::local_time(key.until.as_deref())),
                    Cell::new("-"),
                ]);
            }
        }
    }
    table
}
