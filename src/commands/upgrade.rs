//! `upgrade --to VERSION [--repository ORG]`: the hand upgrade of a customized Interlock
//! (MKE's upgrade leaves it to the user) as one run of the runbook's plan, confirm, apply,
//! verify and restore path. The images come from what the swarm runs, so a re-run after an
//! interruption plans only what is still missing, and a swarm already on `VERSION` has
//! nothing to do.
//!
//! Refused (exit 4, nothing changed) besides the runbook's own refusals: a service that
//! does not run one of Interlock's images (the tool would not know what to move it to),
//! and an image the engine reports missing. When the engine cannot ask the registry (an
//! air-gapped swarm), that is a warning, as the docker CLI gives: the nodes may still hold
//! the image.

use std::collections::BTreeSet;

use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::edit::Edit;
use crate::interlock::image::{ImageRef, Upgrade};
use crate::output::printer::Printer;
use crate::output::report::Report;
use crate::runbook::plan::{self, Observed};
use crate::runbook::{self, Options};
use crate::swarm::{ImageAvailability, SwarmApi, spec};

/// Upgrades the core, the extensions and the proxies to `upgrade`'s images.
pub async fn run<S: SwarmApi>(
    api: &S,
    upgrade: Upgrade,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let edit = Edit::Upgrade(upgrade);
    let state = runbook::observe_settled(api, options, Some(&edit), printer).await?;
    let observed = &state.observed;
    let foreign = not_interlock(observed);
    if !foreign.is_empty() {
        return Err(Error::refused_all(foreign));
    }
    let upgrade = edit.upgrade().expect("an upgrade edit");
    let moved: BTreeSet<String> = plan::upgraded_images(observed, upgrade)
        .into_values()
        .collect();
    let mut missing = Vec::new();
    for image in &moved {
        match api
            .image_availability(image)
            .await
            .map_err(|e| Error::failed(&e))?
        {
            ImageAvailability::Local | ImageAvailability::InRegistry => {}
            ImageAvailability::Missing(said) => missing.push(Problem::new(
                "image_not_found",
                format!("image {image} does not exist: the registry says {said:?}"),
                Some("check `--to` and `--repository` against the images of the MKE release; nothing was changed".into()),
            )),
            ImageAvailability::Unknown(said) => report.warnings.push(format!(
                "image {image} could not be looked up in its registry ({said}); each node will use its own copy or pull it"
            )),
        }
    }
    if !missing.is_empty() {
        return Err(Error::refused_all(missing));
    }
    runbook::change(api, &state, &edit, options, printer, report).await
}

/// A refusal for each service that runs no Interlock image, naming what it runs.
fn not_interlock(observed: &Observed) -> Vec<Problem> {
    observed
        .services()
        .filter_map(|service| {
            let image = spec::image(&service.spec);
            let interlock = ImageRef::parse(&image).is_some_and(|i| i.is_interlock());
            (!interlock).then(|| {
                Problem::new(
                    "not_interlock_image",
                    format!(
                        "{} runs {image}, which is not one of Interlock's images (ucp-interlock, ucp-interlock-extension, ucp-interlock-proxy)",
                        service.name
                    ),
                    Some(format!(
                        "upgrade it by hand (`docker service update --image IMAGE {}`) or point `--service` at the Interlock core; nothing was changed",
                        service.name
                    )),
                )
            })
        })
        .collect()
}
