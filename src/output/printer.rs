//! The one writer of stdout and stderr; resolves colour, quietness and terminals once.
//!
//! Colour follows the conventions every CLI shares, as `anstream` (the crate clap colours its
//! own help with) reads them: `--color` first, then `NO_COLOR`, `CLICOLOR_FORCE=1`,
//! `CLICOLOR=0`, and a terminal whose `TERM` is not `dumb`. Progress bars need a terminal that
//! can move the cursor: on `TERM=dumb`, in CI, off a terminal or with `--no-progress`, each
//! change of a wait is one plain line on stderr instead.

use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anstyle::AnsiColor;

use crate::cli::{ColorChoice, GlobalArgs, OutputFormat};
use crate::error::Problem;
use crate::interlock::findings::Finding;
use crate::output::report::{Report, finding_line};

/// Where and how output goes for this run.
#[derive(Debug, Clone)]
pub struct Printer {
    format: OutputFormat,
    quiet: bool,
    verbose: bool,
    color: bool,
    progress: bool,
    can_prompt: bool,
    /// Where spinners draw, so two waits at once share the terminal.
    spinners: indicatif::MultiProgress,
    /// The first write to stdout that failed other than on a closed pipe.
    stdout_failure: Arc<Mutex<Option<std::io::Error>>>,
}

/// Facts about the process's environment that decide how to print, passed in so the
/// decisions stay testable.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    /// stderr is a terminal.
    pub stderr_tty: bool,
    /// stdin is a terminal (prompts need it).
    pub stdin_tty: bool,
    /// Colour on stderr is wanted when `--color auto`: `NO_COLOR`, `CLICOLOR_FORCE`,
    /// `CLICOLOR`, `TERM` and the terminal decide, as anstream reads them.
    pub color: bool,
    /// `TERM=dumb`: a terminal that cannot move the cursor (Emacs shells, some CI logs).
    pub dumb: bool,
    /// `CI` is set (some CI runners fake a terminal).
    pub ci: bool,
}

impl Terminal {
    /// Reads the facts from the running process.
    pub fn detect() -> Self {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        Terminal {
            stderr_tty: std::io::stderr().is_terminal(),
            stdin_tty: std::io::stdin().is_terminal(),
            color: anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never,
            dumb: std::env::var_os("TERM").is_some_and(|term| term == "dumb"),
            ci: set("CI"),
        }
    }
}

impl Printer {
    /// Decides colour, progress and prompting from the flags and the terminal.
    pub fn new(args: &GlobalArgs, terminal: Terminal) -> Self {
        let text = args.output == OutputFormat::Text;
        let color = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal.color,
        };
        Printer {
            format: args.output,
            quiet: args.quiet,
            verbose: args.verbose,
            color,
            progress: text
                && terminal.stderr_tty
                && !terminal.dumb
                && !terminal.ci
                && !args.quiet
                && !args.no_progress,
            can_prompt: terminal.stderr_tty && terminal.stdin_tty,
            spinners: indicatif::MultiProgress::new(),
            stdout_failure: Arc::default(),
        }
    }

    /// A printer of one JSON document and nothing else on stdout, for a command line that
    /// could not be parsed into options.
    pub fn json() -> Self {
        Printer {
            format: OutputFormat::Json,
            quiet: false,
            verbose: false,
            color: false,
            progress: false,
            can_prompt: false,
            spinners: indicatif::MultiProgress::new(),
            stdout_failure: Arc::default(),
        }
    }

    /// The problem of a write to stdout that failed other than on a closed pipe, if any
    /// since the last call: the output it carried is lost, so the run failed.
    pub fn take_stdout_failure(&self) -> Option<Problem> {
        let failure = self.stdout_failure.lock().ok()?.take();
        failure.map(|error| {
            Problem::new(
                "stdout_write_failed",
                format!("could not write the output to stdout: {error}"),
                Some("check where stdout goes (a full disk?) and run the command again".into()),
            )
        })
    }

    /// The terminal area spinners are drawn in.
    pub fn spinners(&self) -> &indicatif::MultiProgress {
        &self.spinners
    }

    /// Whether the run reports in JSON.
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Whether progress bars may be drawn.
    pub fn shows_progress(&self) -> bool {
        self.progress
    }

    /// Whether status lines are printed (text mode, not quiet).
    pub fn shows_status(&self) -> bool {
        !self.quiet && !self.is_json()
    }

    /// Whether a confirmation prompt can be shown.
    pub fn can_prompt(&self) -> bool {
        self.can_prompt
    }

    /// Whether `-v` asked for details.
    pub fn is_verbose(&self) -> bool {
        self.verbose && !self.quiet
    }

    /// Asks a yes/no question on the terminal (default no); `Ok(false)` when declined.
    pub fn confirm(&self, prompt: &str) -> std::io::Result<bool> {
        dialoguer::Confirm::new()
            .with_prompt(prompt)
            .default(false)
            .interact_opt()
            .map(|answer| answer == Some(true))
            .map_err(|dialoguer::Error::IO(error)| error)
    }

    /// A status line on stderr (text mode, not quiet).
    pub fn status(&self, line: &str) {
        if self.shows_status() {
            write_stderr(&format!("{line}\n"));
        }
    }

    /// A line on stderr in every format (not with `-q`): what the run does about a signal.
    pub fn notice(&self, line: &str) {
        if !self.quiet {
            write_stderr(&format!("{line}\n"));
        }
    }

    /// Warnings that did not stop the run, one `warning:` line each.
    pub fn warnings(&self, warnings: &[String]) {
        for warning in warnings {
            self.status(&format!("warning: {warning}"));
        }
    }

    /// A line only `-v` shows.
    pub fn detail(&self, line: &str) {
        if self.verbose && !self.quiet {
            write_stderr(&format!("{line}\n"));
        }
    }

    /// Data on stdout, exactly as given. A failed write is kept for [`Printer::take_stdout_failure`],
    /// except on a closed pipe (`| head`), which is not an error worth reporting.
    pub fn data(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let written = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
        if let Err(error) = written
            && error.kind() != ErrorKind::BrokenPipe
            && let Ok(mut failure) = self.stdout_failure.lock()
        {
            failure.get_or_insert(error);
        }
    }

    /// Findings of a check, one line each on stdout (text mode; JSON carries them in the
    /// report).
    pub fn findings(&self, findings: &[Finding]) {
        if self.is_json() {
            return;
        }
        let text: String = findings
            .iter()
            .map(|finding| format!("{}\n", finding_line(finding)))
            .collect();
        self.data(&text);
    }

    /// A unified diff on stderr, coloured when allowed.
    pub fn diff(&self, diff: &str) {
        if !self.shows_status() || diff.is_empty() {
            return;
        }
        let text: String = diff
            .lines()
            .map(|line| format!("{}\n", self.paint_diff_line(line)))
            .collect();
        write_stderr(&text);
    }

    fn paint_diff_line(&self, line: &str) -> String {
        let colour = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => AnsiColor::Green,
            Some(b'-') if !line.starts_with("---") => AnsiColor::Red,
            Some(b'@') => AnsiColor::Cyan,
            _ => return line.to_owned(),
        };
        self.paint(line, colour)
    }

    /// `text` in `colour` when colour is on.
    fn paint(&self, text: &str, colour: AnsiColor) -> String {
        if !self.color {
            return text.to_owned();
        }
        let style = colour.on_default();
        format!("{style}{text}{style:#}")
    }

    /// The plan's steps, as a list on stderr.
    pub fn plan(&self, report: &Report) {
        if report.actions.is_empty() {
            return;
        }
        let mut text = String::from("Plan:\n");
        for action in &report.actions {
            text.push_str(&format!(
                "  {} {}: {}\n",
                action.kind.replace('_', " "),
                action.target,
                action.detail
            ));
        }
        if self.shows_status() {
            write_stderr(&text);
        }
    }

    /// The end of a run: the JSON document, or a closing line in text mode.
    pub fn finish(&self, report: &Report, summary: &str) {
        if self.is_json() {
            let json = serde_json::to_string_pretty(report).expect("a report always serializes");
            self.data(&format!("{json}\n"));
        } else {
            self.status(summary);
        }
    }

    /// Problems on stderr, whatever the format: `error: ...` then `hint: ...`.
    pub fn problems(&self, problems: &[Problem]) {
        let mut text = String::new();
        for problem in problems {
            let label = self.paint("error", AnsiColor::Red);
            text.push_str(&format!("{label}: {}\n", problem.message));
            if let Some(hint) = &problem.hint {
                text.push_str(&format!("\nhint: {hint}\n"));
            }
        }
        write_stderr(&text);
    }
}

fn write_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn printer(args: &[&str], terminal: Terminal) -> Printer {
        let mut argv = vec!["interlockctl"];
        argv.extend_from_slice(args);
        argv.push("show");
        Printer::new(&Cli::parse_from(argv).global, terminal)
    }

    const TTY: Terminal = Terminal {
        stderr_tty: true,
        stdin_tty: true,
        color: true,
        dumb: false,
        ci: false,
    };

    #[test]
    fn progress_only_on_an_interactive_text_run() {
        assert!(printer(&[], TTY).shows_progress());
        assert!(!printer(&["-o", "json"], TTY).shows_progress());
        assert!(!printer(&["-q"], TTY).shows_progress());
        assert!(!printer(&["--no-progress"], TTY).shows_progress());
        assert!(!printer(&[], Terminal { ci: true, ..TTY }).shows_progress());
        assert!(!printer(&[], Terminal { dumb: true, ..TTY }).shows_progress());
        assert!(
            !printer(
                &[],
                Terminal {
                    stderr_tty: false,
                    ..TTY
                }
            )
            .shows_progress()
        );
    }

    /// `--color` beats what the environment and the terminal ask for (NO_COLOR, CLICOLOR,
    /// TERM: read by anstream, tested end to end in tests/terminals.rs).
    #[test]
    fn colour_follows_the_flag_then_the_environment() {
        let plain = Terminal {
            color: false,
            ..TTY
        };
        assert!(printer(&[], TTY).color);
        assert!(!printer(&[], plain).color);
        assert!(printer(&["--color", "always"], plain).color);
        assert!(!printer(&["--color", "never"], TTY).color);
    }

    #[test]
    fn prompting_needs_both_terminals() {
        assert!(printer(&[], TTY).can_prompt());
        assert!(
            !printer(
                &[],
                Terminal {
                    stdin_tty: false,
                    ..TTY
                }
            )
            .can_prompt()
        );
    }
}
