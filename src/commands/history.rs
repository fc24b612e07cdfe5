//! `history`: the core's config lineage, read from the labels interlockctl puts on the
//! configs it creates (parent, operation, content digest).

use crate::error::Result;
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::Report;
use crate::runbook::observe::observe;
use crate::runbook::{Options, doctor};
use crate::swarm::SwarmApi;

/// Prints the lineage, oldest first.
pub async fn run<S: SwarmApi>(
    api: &S,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let state = observe(api, options).await?;
    let entries = doctor::lineage(&state.observed.config, &state.observed.lineage);
    if !printer.is_json() {
        let mut text = format!(
            "{:<40} {:<32} {:<10} {:<40} {}\n",
            "NAME", "CREATED", "OPERATION", "PARENT", "DIGEST"
        );
        for entry in &entries {
            let marker = if entry.current { " (current)" } else { "" };
            let digest: String = entry
                .digest
                .as_deref()
                .unwrap_or("-")
                .chars()
                .take(19)
                .collect();
            text.push_str(&format!(
                "{:<40} {:<32} {:<10} {:<40} {digest}{marker}\n",
                entry.name,
                entry.created,
                entry.operation.as_deref().unwrap_or("-"),
                entry.parent.as_deref().unwrap_or("-"),
            ));
        }
        printer.data(&text);
    }
    report.history = Some(entries);
    printer.finish(report, "");
    Ok(ExitCode::Success)
}
