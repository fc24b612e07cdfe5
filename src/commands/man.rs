//! `man`: man pages generated from the command-line definition (`interlockctl.1` and one
//! `interlockctl-COMMAND.1` per command), so they always match this build.
//!
//! Without `--out`, the main page goes to stdout. With `--out DIR`, every page is written
//! into DIR like offline edits are written: planned first, so `--dry-run` and `--check` only
//! list them, and reported as `write_file` actions.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, GlobalArgs};
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::{Action, Report, RunStatus};
use crate::runbook::{self, Options};

/// One man page: its file name and its roff text.
struct Page {
    file_name: String,
    title: String,
    roff: Vec<u8>,
}

/// Prints the main page, or writes every page into `--out`.
pub fn run(
    global: &GlobalArgs,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let pages = pages(Cli::command());
    let Some(dir) = global.out.as_deref() else {
        printer.data(&String::from_utf8_lossy(&pages[0].roff));
        return Ok(ExitCode::Success);
    };
    report.changed = true;
    report.actions = pages
        .iter()
        .map(|page| Action {
            kind: "write_file",
            target: dir.join(&page.file_name).display().to_string(),
            detail: format!("man page of `{}`", page.title),
        })
        .collect();
    printer.plan(report);
    if let Some(code) = runbook::stop_when_planning(options, printer, report) {
        return Ok(code);
    }
    write_pages(dir, &pages)?;
    report.status = RunStatus::Applied;
    printer.finish(
        report,
        &format!("Wrote {} man pages to {}.", pages.len(), dir.display()),
    );
    Ok(ExitCode::Success)
}

/// The pages of `command` and of each of its visible commands, the main page first.
fn pages(command: clap::Command) -> Vec<Page> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect_pages(command, &mut pages);
    pages
}

fn collect_pages(command: clap::Command, pages: &mut Vec<Page>) {
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let title = command
        .get_bin_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let man = clap_mangen::Man::new(command);
    let mut roff = Vec::new();
    man.render(&mut roff)
        .expect("rendering into memory cannot fail");
    pages.push(Page {
        file_name: man.get_filename(),
        title,
        roff,
    });
    for sub in subcommands {
        collect_pages(sub, pages);
    }
}

fn write_pages(dir: &Path, pages: &[Page]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            pages
                .iter()
                .try_for_each(|page| std::fs::write(dir.join(&page.file_name), &page.roff))
        })
        .map_err(|error| {
            Error::other(
                "write_failed",
                format!("cannot write the man pages to {}: {error}", dir.display()),
                Some("pass `--out DIR` with a writable directory".into()),
            )
        })
}
