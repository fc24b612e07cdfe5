//! Progress while waiting for the swarm: a spinner per wait on an interactive terminal (waits
//! that run at once get one line each), otherwise one line whenever the state changes (never
//! in JSON mode or with `-q`). A spinner indicatif would hide (it judges the terminal itself)
//! becomes lines too, so a wait is never silent.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::printer::Printer;
use crate::swarm::converge::{Assessment, Phase};

/// Progress of one wait.
pub struct Progress<'a> {
    printer: &'a Printer,
    bar: Option<ProgressBar>,
    last: String,
}

impl<'a> Progress<'a> {
    /// Starts showing progress for a wait.
    pub fn start(printer: &'a Printer) -> Self {
        let bar = printer.shows_progress().then(|| {
            let bar = printer.spinners().add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let bar = bar.filter(|bar| !bar.is_hidden());
        Progress {
            printer,
            bar,
            last: String::new(),
        }
    }

    /// Shows the latest assessment.
    pub fn update(&mut self, assessment: &Assessment) {
        let line = describe(assessment);
        if line == self.last {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(line.clone()),
            None => self.printer.status(&format!("  {line}")),
        }
        self.last = line;
    }

    /// Removes the spinner.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(assessment: &Assessment) -> String {
    let phase = match &assessment.phase {
        Phase::Updating => "updating",
        Phase::Converged => "converged",
        Phase::Paused(_) => "update paused",
        Phase::RollingBack(_) => "rolling back",
        Phase::RolledBack(_) => "rolled back",
    };
    format!(
        "{}: {}/{} tasks running, {phase}",
        assessment.service, assessment.running, assessment.desired
    )
}
