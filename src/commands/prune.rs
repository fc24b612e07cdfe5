//! `prune --keep N`: deletes old configs of the core's lineage. Config objects pile up
//! because each change creates one; this removes them only when asked, and never one that
//! is in use, that Swarm's rollback of the core or the proxy would return to, or one of
//! the N newest.

use serde_json::Value;

use crate::cli::PruneArgs;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::{Action, Report, RunStatus};
use crate::runbook::observe::observe;
use crate::runbook::plan::{self, LABEL_PARENT, Observed};
use crate::runbook::{self, Options};
use crate::swarm::{ConfigObject, SwarmApi};

/// Deletes the prunable configs after the usual plan and confirmation.
pub async fn run<S: SwarmApi>(
    api: &S,
    args: &PruneArgs,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let state = observe(api, options).await?;
    let doomed = prunable(&state.observed, args.keep);
    report.extension = Some(state.extension.clone());
    report.changed = !doomed.is_empty();
    report.actions = doomed
        .iter()
        .map(|config| Action {
            kind: "delete_config",
            target: config.name.clone(),
            detail: format!("created {}", config.created_at),
        })
        .collect();
    printer.plan(report);
    if doomed.is_empty() {
        report.status = RunStatus::NoChanges;
        printer.finish(report, "Nothing to prune.");
        return Ok(ExitCode::Success);
    }
    if let Some(code) = runbook::stop_when_planning(options, printer, report) {
        return Ok(code);
    }
    runbook::confirm(options, printer)?;
    for config in &doomed {
        api.delete_config(&config.id)
            .await
            .map_err(|e| Error::failed(&e))?;
        printer.status(&format!("Deleted {}.", config.name));
    }
    report.status = RunStatus::Applied;
    printer.finish(report, "Pruned.");
    Ok(ExitCode::Success)
}

/// The lineage configs that may go: not the current one, not one `rollback` may return to
/// (the current config's recorded parent, or a config a previous spec of the core or the
/// proxy references: Swarm's own rollback target), not one of the `keep` newest. Pure.
pub fn prunable(observed: &Observed, keep: usize) -> Vec<ConfigObject> {
    let parent = observed
        .config
        .labels
        .get(LABEL_PARENT)
        .and_then(|parent| observed.lineage.iter().find(|c| &c.name == parent))
        .map(|config| config.id.as_str());
    let protected: Vec<&str> = [
        observed.core.previous_spec.as_ref(),
        observed
            .proxy
            .as_ref()
            .and_then(|p| p.previous_spec.as_ref()),
    ]
    .into_iter()
    .flatten()
    .flat_map(referenced_configs)
    .chain(parent)
    .collect();
    let base = plan::lineage_base(&observed.config.name);
    let mut candidates: Vec<&ConfigObject> = observed.lineage.iter().collect();
    candidates.sort_by_key(|config| std::cmp::Reverse(plan::lineage_number(base, &config.name)));
    candidates
        .into_iter()
        .skip(keep)
        .filter(|config| {
            config.id != observed.config.id && !protected.contains(&config.id.as_str())
        })
        .cloned()
        .collect()
}

/// The IDs of every config a service spec mounts.
fn referenced_configs(spec: &Value) -> Vec<&str> {
    spec.pointer("/TaskTemplate/ContainerSpec/Configs")
        .and_then(Value::as_array)
        .map(|configs| {
            configs
                .iter()
                .filter_map(|c| c.get("ConfigID").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::observed;

    fn lineage_config(n: u64) -> ConfigObject {
        ConfigObject {
            id: format!("c{n}"),
            name: format!("com.docker.ucp.interlock.conf-{n}"),
            labels: Default::default(),
            created_at: String::new(),
        }
    }

    fn names(configs: &[ConfigObject]) -> Vec<&str> {
        configs.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn never_the_current_config_a_rollback_target_or_the_newest() {
        let mut observed = observed();
        observed.lineage = (1..=6).map(lineage_config).collect();
        observed.config = lineage_config(5);
        observed.core.previous_spec =
            Some(json!({"TaskTemplate": {"ContainerSpec": {"Configs": [{"ConfigID": "c2"}]}}}));
        assert_eq!(
            names(&prunable(&observed, 0)),
            [
                "com.docker.ucp.interlock.conf-6",
                "com.docker.ucp.interlock.conf-4",
                "com.docker.ucp.interlock.conf-3",
                "com.docker.ucp.interlock.conf-1"
            ]
        );
        assert_eq!(
            names(&prunable(&observed, 3)),
            [
                "com.docker.ucp.interlock.conf-3",
                "com.docker.ucp.interlock.conf-1"
            ]
        );
        assert!(prunable(&observed, 6).is_empty());

        // The current config's recorded parent is what `rollback` returns to once Swarm's
        // previous spec is gone.
        observed.core.previous_spec = None;
        observed.config.labels.insert(
            LABEL_PARENT.to_owned(),
            "com.docker.ucp.interlock.conf-3".to_owned(),
        );
        assert_eq!(
            names(&prunable(&observed, 0)),
            [
                "com.docker.ucp.interlock.conf-6",
                "com.docker.ucp.interlock.conf-4",
                "com.docker.ucp.interlock.conf-2",
                "com.docker.ucp.interlock.conf-1"
            ]
        );
    }
}
