//! `rollback`: put the core back on the config it used before (or `--to NAME`) and make
//! the proxy match it again, through the same plan, confirm, apply and verify path as a
//! forward change. The target is the config in the core's previous spec (Swarm's own
//! rollback target), so rolling back twice returns to where it started; after an
//! automatic rollback Swarm clears that spec, and the current config's recorded parent
//! is used instead. The old config object is reused, never copied. Images an `upgrade`
//! since the target moved (recorded on the config it created) are put back with it.

use crate::cli::RollbackArgs;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::interlock::edit::Edit;
use crate::output::printer::Printer;
use crate::output::report::Report;
use crate::runbook::observe;
use crate::runbook::observe::LiveState;
use crate::runbook::plan::{self, CONFIG_TARGET, LABEL_PARENT};
use crate::runbook::{self, Options};
use crate::swarm::{ConfigObject, SwarmApi, spec};

/// Rolls the core back to the previous config and the proxy to match it.
pub async fn run<S: SwarmApi>(
    api: &S,
    args: &RollbackArgs,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let mut state = runbook::observe_settled(api, options, None, printer).await?;
    let target = rollback_target(&state, args.to.as_deref())?;
    // The services whose images the runs since the target moved: they go back too.
    let moved = plan::images_before(&state.observed, &target.name);
    observe::read_others(api, &mut state.observed, moved.keys()).await?;
    let text = api
        .config_data(&target.id)
        .await
        .map_err(|e| Error::failed(&e))?;
    let edit = Edit::Replace {
        source: target.name.clone(),
        text,
        existing: Some(target),
    };
    runbook::change(api, &state, &edit, options, printer, report).await
}

/// The config to return to: `--to`, else the core's previous spec, else the recorded parent.
fn rollback_target(state: &LiveState, to: Option<&str>) -> Result<ConfigObject> {
    let observed = &state.observed;
    let previous = observed
        .core
        .previous_spec
        .as_ref()
        .and_then(|previous| spec::config_ref(previous, CONFIG_TARGET))
        .map(|(name, _)| name)
        .filter(|name| *name != observed.config.name);
    let name = to
        .map(str::to_owned)
        .or(previous)
        .or_else(|| observed.config.labels.get(LABEL_PARENT).cloned())
        .ok_or_else(|| {
            Error::refusal(
                "nothing_to_roll_back",
                format!(
                    "{} has no previous config to return to",
                    observed.config.name
                ),
                Some(
                    "pass `--to NAME` with a config of the lineage \
                     (`interlockctl status` lists them)"
                        .into(),
                ),
            )
        })?;
    observed
        .lineage
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = observed.lineage.iter().map(|c| c.name.as_str()).collect();
            Error::refusal(
                "config_not_found",
                format!(
                    "config {name} is not in the lineage of {}",
                    observed.config.name
                ),
                Some(format!("pass `--to` one of: {}", names.join(", "))),
            )
        })
}
