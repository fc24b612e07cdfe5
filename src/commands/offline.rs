//! Offline mode (`--config-file`): plan and edit a local TOML file; no swarm is touched.
//!
//! The edited TOML goes to stdout or `--out`, the diff to stderr, so the tool can be tried,
//! reviewed and scripted without a cluster (and configs can be kept in git).

use std::io::Read;
use std::path::Path;

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::interlock::config::InterlockConfig;
use crate::interlock::edit::{Edit, unified_diff};
use crate::output::printer::Printer;
use crate::output::report::{Action, ConfigReport, Report, RunStatus};
use crate::runbook::{self, Options};

/// Runs an editing command against `path` (`-` = stdin).
pub fn run(
    edit: &Edit,
    path: &Path,
    global: &GlobalArgs,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    if path == Path::new("-") && matches!(edit, Edit::Replace { source, .. } if source == "-") {
        return Err(Error::refusal(
            "stdin_twice",
            "`--config-file -` and `apply -` cannot both read stdin",
            Some("pass a file path to one of them".to_owned()),
        ));
    }
    let source = source_name(path);
    let text = read_source(path)?;
    let config = InterlockConfig::parse(&source, &text).map_err(|e| Error::refused(&e))?;
    let extension = edit.observed_extension(&config, options.extension.as_deref())?;
    config
        .extension(&extension)
        .map_err(|e| Error::refused(&e))?;
    let edited = edit.edited_config(&config, &extension, None)?;
    let new_text = edited.config.text();
    let target = global
        .out
        .as_ref()
        .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    let diff = unified_diff(&text, &new_text, &source, &target, global.show_secrets);

    report.extension = Some(edit.target_extension(&extension));
    report.warnings = edited.warnings;
    report.changed = new_text != text;
    let config = ConfigReport {
        service: global.service.clone(),
        current: Some(source),
        next: None,
        diff,
        changes: edited.changes,
        content: None,
    };
    printer.warnings(&report.warnings);
    runbook::present_config(report, config, options, printer);
    if report.changed {
        report.actions.push(Action {
            kind: "write_file",
            target: target.clone(),
            detail: format!(
                "{} key(s) changed",
                report.config.as_ref().map_or(0, |c| c.changes.len())
            ),
        });
    }

    if let Some(code) = runbook::stop_when_planning(options, printer, report) {
        return Ok(code);
    }

    write_output(global, &new_text, printer, report)?;
    report.status = if report.changed {
        RunStatus::Applied
    } else {
        RunStatus::NoChanges
    };
    let summary = match (report.changed, &global.out) {
        (false, _) => "No changes.".to_owned(),
        (true, Some(out)) => format!("Wrote {}.", out.display()),
        (true, None) => "Edited config written to stdout.".to_owned(),
    };
    printer.finish(report, &summary);
    Ok(ExitCode::Success)
}

/// How a source path is named in messages: `stdin` for `-`.
pub fn source_name(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Reads a TOML source: a file, or stdin for `-`.
pub fn read_source(path: &Path) -> Result<String> {
    let mut text = String::new();
    let outcome = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    outcome.map_err(|error| {
        Error::refusal(
            "unreadable_file",
            format!("cannot read {}: {error}", source_name(path)),
            Some("check the path and its permissions".to_owned()),
        )
    })?;
    Ok(text)
}

/// Writes the edited TOML to `--out` (atomically: a temp file renamed into place), or to
/// stdout in text mode, or into the JSON report.
fn write_output(
    global: &GlobalArgs,
    text: &str,
    printer: &Printer,
    report: &mut Report,
) -> Result<()> {
    let Some(out) = global.out.as_deref() else {
        if printer.is_json() {
            if let Some(config) = report.config.as_mut() {
                config.content = Some(text.to_owned());
            }
        } else {
            printer.data(text);
            if let Some(lost) = printer.take_stdout_failure() {
                return Err(Error::new(ExitCode::Failure, lost));
            }
        }
        return Ok(());
    };
    write_atomically(out, text)
}

/// Replaces `path` with `text` atomically: a temp file beside it, renamed into place. The
/// replaced file keeps its mode: configs hold secrets (AdminPass) and may be 0600.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.interlockctl-tmp"));
    let permissions = std::fs::metadata(path).ok().map(|m| m.permissions());
    std::fs::write(&temp, text)
        .and_then(|()| permissions.map_or(Ok(()), |p| std::fs::set_permissions(&temp, p)))
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|error| {
            let _ = std::fs::remove_file(&temp);
            Error::other(
                "write_failed",
                format!("cannot write {}: {error}", path.display()),
                None,
            )
        })
}
