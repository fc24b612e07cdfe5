//! `show`: the runbook's "fetch" step — the live config's TOML on stdout, its name on
//! stderr. It prints whatever the core mounts, even a config that is not valid TOML (then
//! with a warning): that is when an operator needs to see it.

use crate::error::Result;
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::{ConfigReport, Report};
use crate::runbook::observe::read_mounted;
use crate::runbook::{self, Options};
use crate::swarm::SwarmApi;

/// Prints the live config.
pub async fn run<S: SwarmApi>(
    api: &S,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let mounted = read_mounted(api, options).await?;
    match mounted.parse() {
        Ok(config) => {
            report.extension = config.select_extension(options.extension.as_deref()).ok();
        }
        Err(error) => report.warnings = error.problems.into_iter().map(|p| p.message).collect(),
    }
    printer.warnings(&report.warnings);
    if printer.is_json() {
        let config = ConfigReport {
            service: mounted.core.name,
            current: Some(mounted.name),
            content: Some(mounted.text),
            ..ConfigReport::default()
        };
        runbook::present_config(report, config, options, printer);
        printer.finish(report, "");
    } else {
        printer.status(&mounted.name);
        printer.data(&mounted.text);
    }
    Ok(ExitCode::Success)
}
