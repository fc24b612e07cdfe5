//! Ctrl-C and SIGTERM: the first stops the run at its next request (the one on its way is
//! answered first, so the run knows whether the engine took it) and ends it with what was and
//! was not sent; a second exits at once, saying the same. See [`runbook::journal`].
//!
//! [`runbook::journal`]: crate::runbook::journal

use tokio::signal::unix::{Signal as Listener, SignalKind, signal};
use tokio::sync::watch;

use crate::output::printer::Printer;
use crate::runbook::journal::{Journal, Signal};

/// Starts listening for SIGINT and SIGTERM (inside the runtime); the receiver sees the first
/// one. `None` when the signals cannot be listened for: the run then ends as the signal's
/// default action ends it.
pub fn listen(journal: &Journal, printer: &Printer) -> Option<watch::Receiver<Option<Signal>>> {
    let mut interrupt = signal(SignalKind::interrupt()).ok()?;
    let mut terminate = signal(SignalKind::terminate()).ok()?;
    let (sender, receiver) = watch::channel(None);
    let (journal, printer) = (journal.clone(), printer.clone());
    tokio::spawn(async move {
        let first = next(&mut interrupt, &mut terminate).await;
        let _ = sender.send(Some(first));
        let second = next(&mut interrupt, &mut terminate).await;
        printer.problems(&journal.interrupted(second).problems);
        // The run is not waited for: the user asked twice.
        #[allow(clippy::exit)]
        std::process::exit(second.exit().code());
    });
    Some(receiver)
}

async fn next(interrupt: &mut Listener, terminate: &mut Listener) -> Signal {
    tokio::select! {
        _ = interrupt.recv() => Signal::Interrupt,
        _ = terminate.recv() => Signal::Terminate,
    }
}

/// Resolves with the first signal once the run it stopped has no request on its way; never
/// without a signal.
pub async fn stopped(
    first: Option<watch::Receiver<Option<Signal>>>,
    journal: &Journal,
    printer: &Printer,
) -> Signal {
    let Some(mut first) = first else {
        return std::future::pending().await;
    };
    let signal = match first.wait_for(Option::is_some).await {
        Ok(signal) => signal.expect("waited for a signal"),
        Err(_) => return std::future::pending().await,
    };
    if let Some(request) = journal.stop() {
        printer.notice(&format!(
            "{}: stopping once the engine answers the request to {request}, already sent \
             (press Ctrl-C again to exit at once)",
            signal.name()
        ));
    }
    journal.settled().await;
    signal
}
