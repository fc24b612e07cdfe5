//! `stack lint` and `stack fix`: a stack file checked, and rewritten, for host-mode
//! Interlock routing. The rules and the rewrite are `crate::stack`'s; this reads and
//! writes the file and reports.

use std::path::Path;

use crate::cli::{GlobalArgs, ProxyMode, StackFixArgs, StackLintArgs};
use crate::commands::labels::{finish_check, in_file, read_stack};
use crate::commands::offline;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::interlock::config::PublishMode;
use crate::interlock::edit::unified_diff;
use crate::interlock::findings::{Counts, Severity};
use crate::output::printer::Printer;
use crate::output::report::{Action, Report, RunStatus, StackFix};
use crate::stack::compose::Stack;
use crate::stack::{fix, lint};

/// Lints a stack file for a proxy publishing in `--proxy-mode` (host unless told).
pub fn run_lint(args: &StackLintArgs, printer: &Printer, report: &mut Report) -> Result<ExitCode> {
    let (source, stack) = read_stack(&args.file)?;
    let (mode, assumed) = match args.proxy_mode {
        ProxyMode::Host => (
            PublishMode::Host,
            "proxy in host mode; `--proxy-mode ingress` if it is still on the routing mesh",
        ),
        ProxyMode::Ingress => (PublishMode::Ingress, "proxy on the routing mesh"),
    };
    let findings = in_file(lint::lint(&stack, mode), &source);
    let subject = format!("stack lint of {source} ({assumed})");
    finish_check(findings, &subject, "stack_lint_errors", printer, report)
}

/// Shows the fix as a diff; with `--write`, writes it and reads it back.
pub fn run_fix(
    args: &StackFixArgs,
    global: &GlobalArgs,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let stdin = args.file == Path::new("-");
    if stdin && args.write {
        return Err(Error::refusal(
            "write_to_stdin",
            "`stack fix - --write` has no file to write to",
            Some("pass the stack file's path, or drop `--write` to see the diff".into()),
        ));
    }
    let source = offline::source_name(&args.file);
    let text = offline::read_source(&args.file)?;
    let stack = Stack::parse(&source, &text).map_err(|e| Error::refused(&e))?;
    let fixed = fix::fix(&stack).map_err(|unfixable| {
        let findings = in_file(unfixable, &source);
        printer.findings(&findings);
        let count = findings.len();
        report.findings = Some(findings);
        Error::refusal(
            "cannot_fix",
            format!("stack fix cannot repair {count} error(s) in {source}; nothing was changed"),
            Some("fix the errors listed above by hand; `stack fix` repairs the rest".into()),
        )
    })?;
    // A stack file is the user's own YAML, shown as it is: no TOML secrets to hide.
    let diff = unified_diff(&text, &fixed.text, &source, &source, true);
    report.changed = !diff.is_empty();
    report.fix = Some(StackFix {
        file: source.clone(),
        diff: diff.clone(),
        changes: fixed.changes.clone(),
        written: false,
    });
    if !report.changed {
        let remaining = remaining_findings(&fixed.text, &source)?;
        report.status = RunStatus::NoChanges;
        report.findings = Some(remaining);
        printer.finish(report, &format!("No changes: {source} passes stack lint."));
        return Ok(ExitCode::Success);
    }
    for change in &fixed.changes {
        printer.status(&format!("  {change}"));
    }
    report.actions.push(Action {
        kind: "write_file",
        target: source.clone(),
        detail: format!("{} change(s)", fixed.changes.len()),
    });
    if !args.write || global.dry_run || global.check {
        if !printer.is_json() {
            printer.data(&diff);
        }
        report.findings = Some(remaining_findings(&fixed.text, &source)?);
        report.status = RunStatus::Planned;
        let summary =
            format!("Changes pending; nothing was written (pass --write to write {source}).");
        printer.finish(report, &summary);
        return Ok(if global.check {
            ExitCode::ChangesPending
        } else {
            ExitCode::Success
        });
    }
    printer.diff(&diff);
    offline::write_atomically(&args.file, &fixed.text)?;
    let written = offline::read_source(&args.file)?;
    if written != fixed.text {
        return Err(Error::other(
            "write_not_verified",
            format!("{source} does not hold the fixed text after writing it"),
            Some("check whether something else changed the file meanwhile".into()),
        ));
    }
    let remaining = remaining_findings(&written, &source)?;
    let counts = Counts::of(&remaining);
    report.findings = Some(remaining);
    if let Some(fix) = report.fix.as_mut() {
        fix.written = true;
    }
    report.status = RunStatus::Applied;
    printer.finish(
        report,
        &format!(
            "Wrote {source}; read back, stack lint finds {} error(s) and {} warning(s) in it.",
            counts.errors, counts.warnings
        ),
    );
    Ok(ExitCode::Success)
}

/// What `stack lint` (host mode) still finds in a fixed text: warnings and not-checked
/// labels; an error here would mean the fix is wrong.
fn remaining_findings(
    text: &str,
    source: &str,
) -> Result<Vec<crate::interlock::findings::Finding>> {
    let stack = Stack::parse(source, text).map_err(|e| Error::failed(&e))?;
    let findings = in_file(lint::lint(&stack, PublishMode::Host), source);
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(Error::other(
            "fix_incomplete",
            format!("the fixed {source} still has stack lint errors; this is a bug"),
            Some(
                "report it with the stack file; the file was not changed unless it says so above"
                    .into(),
            ),
        ));
    }
    Ok(findings)
}
