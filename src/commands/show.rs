//! `show`: the runbook's "fetch" step — the live config's TOML on stdout, its name on stderr.

use crate::error::Result;
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::{ConfigReport, Report};
use crate::runbook::observe::observe;
use crate::runbook::{self, Options};
use crate::swarm::SwarmApi;

/// Prints the live config.
pub async fn run<S: SwarmApi>(
    api: &S,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let state = observe(api, options).await?;
    let name = state.observed.config.name.clone();
    report.extension = Some(state.extension);
    if printer.is_json() {
        let config = ConfigReport {
            service: state.observed.core.name,
            current: Some(name),
            content: Some(state.observed.config_text),
            ..ConfigReport::default()
        };
        runbook::present_config(report, config, options, printer);
        printer.finish(report, "");
    } else {
        printer.status(&name);
        printer.data(&state.observed.config_text);
    }
    Ok(ExitCode::Success)
}
