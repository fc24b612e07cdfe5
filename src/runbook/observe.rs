//! Observe: read what the runbook works on from the swarm (the engine's role and API
//! version, the core service, its config, the proxies, the config lineage and the nodes),
//! and parse the live config. Reads only.
//!
//! The reading is split into small steps that two compositions share. [`observe`], for the
//! commands that change the swarm, stops at the first piece that is missing or unusable
//! (exit 4): nothing can be planned from a swarm without a core config or a proxy.
//! [`survey`], for `status`, records each such refusal as a finding and reads on: the
//! doctor is needed exactly when something is broken, and must then show everything else.

use std::time::SystemTime;

use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::cluster;
use crate::interlock::config::{ExtensionSettings, InterlockConfig};
use crate::interlock::edit::Edit;
use crate::interlock::rejection::Record;
use crate::runbook::Options;
use crate::runbook::plan::{self, CONFIG_TARGET, Observed};
use crate::runbook::preflight;
use crate::swarm::spec;
use crate::swarm::{ConfigObject, Network, Node, OLDEST_API, Service, SwarmApi, SwarmError, Task};

/// MKE's agent service: its image tag is the MKE version.
pub const UCP_AGENT: &str = "ucp-agent";

/// The label Interlock puts on every proxy service it creates (any service cluster's).
pub const PROXY_LABEL: (&str, &str) = ("type", "com.docker.interlock.core.proxy");

/// Checks the engine is a manager that speaks configs (API >= 1.30).
async fn check_engine<S: SwarmApi>(api: &S) -> Result<()> {
    let engine = api.engine().await.map_err(|e| Error::failed(&e))?;
    let (major, minor) = engine.api_version.split_once('.').unwrap_or(("0", "0"));
    let version = (
        major.parse::<u32>().unwrap_or(0),
        minor.parse::<u32>().unwrap_or(0),
    );
    if version < OLDEST_API {
        return Err(Error::failed(&SwarmError::ApiTooOld(engine.api_version)));
    }
    if !engine.is_manager {
        return Err(Error::failed(&SwarmError::NotManager("this engine".into())));
    }
    Ok(())
}

fn swarm_failed(error: SwarmError) -> Error {
    Error::failed(&error)
}

/// The core service; refused when it does not exist.
async fn read_core<S: SwarmApi>(api: &S, name: &str) -> Result<Service> {
    api.service(name)
        .await
        .map_err(swarm_failed)?
        .ok_or_else(|| Error::refused(&preflight::Missing::CoreService(name.to_owned())))
}

/// The config the core mounts at `/config.toml`, as `(name, ID)`; refused when none.
fn config_mount(core: &Service) -> Result<(String, String)> {
    spec::config_ref(&core.spec, CONFIG_TARGET)
        .ok_or_else(|| Error::refused(&preflight::Missing::ConfigMount(core.name.clone())))
}

/// A service that an extension names; refused when it does not exist.
async fn read_proxy<S: SwarmApi>(api: &S, name: &str) -> Result<Service> {
    api.service(name)
        .await
        .map_err(swarm_failed)?
        .ok_or_else(|| Error::refused(&preflight::Missing::ProxyService(name.to_owned())))
}

/// The mounted config object and every config of its lineage (same base name).
async fn read_lineage<S: SwarmApi>(
    api: &S,
    name: &str,
    id: &str,
) -> Result<(ConfigObject, Vec<ConfigObject>)> {
    let base = plan::lineage_base(name).to_owned();
    let all = api.configs(&base).await.map_err(swarm_failed)?;
    let current = all.iter().find(|c| c.id == id).cloned().ok_or_else(|| {
        swarm_failed(SwarmError::Protocol {
            operation: "list configs".into(),
            message: format!("config {name} is mounted but not listed"),
        })
    })?;
    let lineage = all
        .into_iter()
        .filter(|c| plan::in_lineage(&base, &c.name))
        .collect();
    Ok((current, lineage))
}

/// The core and the text of the config it mounts, not yet parsed.
pub struct MountedConfig {
    /// The Interlock core service.
    pub core: Service,
    /// The mounted config's name.
    pub name: String,
    /// Its ID.
    pub id: String,
    /// Its content, whatever it holds.
    pub text: String,
}

impl MountedConfig {
    /// The content as an Interlock config; refused when it is not valid TOML.
    pub fn parse(&self) -> Result<InterlockConfig> {
        parse_config(&self.name, &self.text)
    }
}

fn parse_config(name: &str, text: &str) -> Result<InterlockConfig> {
    InterlockConfig::parse(name, text).map_err(|e| Error::refused(&e))
}

/// Checks the engine, then reads the core and the content of its config.
pub async fn read_mounted<S: SwarmApi>(api: &S, options: &Options) -> Result<MountedConfig> {
    check_engine(api).await?;
    let core = read_core(api, &options.core_service).await?;
    let (name, id) = config_mount(&core)?;
    let text = api.config_data(&id).await.map_err(swarm_failed)?;
    Ok(MountedConfig {
        core,
        name,
        id,
        text,
    })
}

/// Everything read from the swarm, with the live config parsed and its extension chosen.
pub struct LiveState {
    /// The observation the plan is computed from.
    pub observed: Observed,
    /// The live config.
    pub config: InterlockConfig,
    /// The observed extension: the selected one (for `cluster add` the one copied, for
    /// `cluster remove` one that stays).
    pub extension: String,
    /// Its settings in the live config.
    pub settings: ExtensionSettings,
}

/// Checks the engine, then reads the core, its config, the selected extension's proxy,
/// the lineage and the nodes.
pub async fn observe<S: SwarmApi>(api: &S, options: &Options) -> Result<LiveState> {
    observe_for(api, options, None).await
}

/// [`observe`] for an edit. It may observe another extension than the selected one
/// (`cluster remove` observes one that stays); the proxy it reads is the one the edit works
/// on, which for a new service cluster may not exist yet (the core creates it from the new
/// config); and it reads the services of a removed cluster that no other extension names.
pub async fn observe_for<S: SwarmApi>(
    api: &S,
    options: &Options,
    edit: Option<&Edit>,
) -> Result<LiveState> {
    let mounted = read_mounted(api, options).await?;
    let config = mounted.parse()?;
    let requested = options.extension.as_deref();
    let extension = match edit {
        Some(edit) => edit.observed_extension(&config, requested)?,
        None => config
            .select_extension(requested)
            .map_err(|e| Error::refused(&e))?,
    };
    let settings = config
        .extension(&extension)
        .map_err(|e| Error::refused(&e))?;
    let proxy = match edit.and_then(Edit::new_proxy_service) {
        Some(name) => api.service(&name).await.map_err(swarm_failed)?,
        None => Some(read_proxy(api, &settings.proxy_service_name).await?),
    };
    let mut retired = Vec::new();
    if let Some(removed) = edit.and_then(Edit::removed_extension) {
        for name in cluster::services_only_named_by(&config, removed) {
            retired.extend(api.service(&name).await.map_err(swarm_failed)?);
        }
    }
    let others = match edit.and_then(Edit::upgrade) {
        Some(_) => read_extension_services(api, &config).await?,
        None => Vec::new(),
    };
    let (current, lineage) = read_lineage(api, &mounted.name, &mounted.id).await?;
    let nodes = api.nodes().await.map_err(swarm_failed)?;
    Ok(LiveState {
        observed: Observed {
            core: mounted.core,
            config: current,
            config_text: mounted.text,
            lineage,
            nodes,
            proxy,
            retired,
            others,
        },
        config,
        extension,
        settings,
    })
}

/// The services every extension of `config` runs: its extension service (when it exists:
/// the core creates a missing one) and its proxy (refused when missing), each once.
async fn read_extension_services<S: SwarmApi>(
    api: &S,
    config: &InterlockConfig,
) -> Result<Vec<Service>> {
    let mut services: Vec<Service> = Vec::new();
    for extension in config.extension_names().map_err(|e| Error::refused(&e))? {
        let extension_service = api
            .service(&config.extension_service_name(&extension))
            .await
            .map_err(swarm_failed)?;
        let proxy = read_proxy(api, &config.proxy_service_name(&extension)).await?;
        for service in extension_service.into_iter().chain([proxy]) {
            if !services.iter().any(|known| known.id == service.id) {
                services.push(service);
            }
        }
    }
    Ok(services)
}

/// Reads the services named in `names` that exist into `observed.others` (a rollback that
/// puts back the images an upgrade moved).
pub async fn read_others<S: SwarmApi>(
    api: &S,
    observed: &mut Observed,
    names: impl IntoIterator<Item = &String>,
) -> Result<()> {
    for name in names
        .into_iter()
        .filter(|name| **name != observed.core.name)
    {
        observed
            .others
            .extend(api.service(name).await.map_err(swarm_failed)?);
    }
    Ok(())
}

/// A proxy service and its tasks, as the doctor reads them.
#[derive(Debug, Clone)]
pub struct SurveyedProxy {
    /// The service.
    pub service: Service,
    /// Its tasks of the current spec.
    pub tasks: Vec<Task>,
    /// Every task Swarm keeps for it, older specs included.
    pub history: Vec<Task>,
}

/// One `[Extensions.NAME]` of the live config, as far as it could be read.
#[derive(Debug, Clone)]
pub struct SurveyedExtension {
    /// The extension's name.
    pub name: String,
    /// Its settings; `None` when the config cannot give them (a finding says why).
    pub settings: Option<ExtensionSettings>,
    /// The proxy service it names.
    pub proxy_service: String,
    /// That service, if it exists.
    pub proxy: Option<SurveyedProxy>,
}

/// The config object the core mounts, as far as it could be read.
#[derive(Debug, Clone)]
pub struct SurveyedConfig {
    /// The config object.
    pub object: ConfigObject,
    /// Its content.
    pub text: String,
    /// Its lineage.
    pub lineage: Vec<ConfigObject>,
    /// The content parsed; `None` when it is not valid TOML.
    pub parsed: Option<InterlockConfig>,
}

/// What a refused reading step becomes in the survey: a finding, maybe of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The extension it concerns, if one.
    pub extension: Option<String>,
    /// What was refused.
    pub problem: Problem,
}

/// Everything `status` shows, read without refusing anything.
#[derive(Debug, Clone)]
pub struct Survey {
    /// The core, if it exists.
    pub core: Option<Service>,
    /// Its config, if it mounts one.
    pub config: Option<SurveyedConfig>,
    /// Every extension of the config, in file order.
    pub extensions: Vec<SurveyedExtension>,
    /// The extension `--extension` (or the default choice) selects, if any.
    pub selected: Option<String>,
    /// Proxy services (by Interlock's label) that no extension of the config names.
    pub unclaimed_proxies: Vec<SurveyedProxy>,
    /// All nodes.
    pub nodes: Vec<Node>,
    /// All networks, to name the ones the proxies attach to.
    pub networks: Vec<Network>,
    /// The extension services the config's extensions name (`ServiceName`) that exist.
    pub extension_services: Vec<Service>,
    /// MKE's `ucp-agent` service, whose image tag is the MKE version, if it exists.
    pub ucp_agent: Option<Service>,
    /// The steps [`observe`] would have refused at.
    pub refused: Vec<Refused>,
    /// Services whose labels `labels watch --reject` rejected, by name, with its note.
    pub rejected_labels: Vec<(String, Record)>,
    /// When the survey was taken (local clock), to tell how long ago things happened.
    pub taken_at: SystemTime,
}

/// Keeps a refusal as a finding and goes on without the value; other failures (the engine
/// unreachable, an API error) still stop the survey.
fn tolerate<T>(
    result: Result<T>,
    extension: Option<&str>,
    refused: &mut Vec<Refused>,
) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.exit == ExitCode::Refused => {
            refused.extend(error.problems.into_iter().map(|problem| Refused {
                extension: extension.map(str::to_owned),
                problem,
            }));
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Reads the core, its config, every extension's proxy with its tasks, the proxies no
/// extension names, the nodes and the networks. What `observe` refuses becomes a finding.
pub async fn survey<S: SwarmApi>(api: &S, options: &Options) -> Result<Survey> {
    check_engine(api).await?;
    let mut refused = Vec::new();
    let core = tolerate(
        read_core(api, &options.core_service).await,
        None,
        &mut refused,
    )?;
    let config = match &core {
        Some(core) => survey_config(api, core, &mut refused).await?,
        None => None,
    };
    let parsed = config.as_ref().and_then(|c| c.parsed.as_ref());
    let selected = match parsed {
        Some(parsed) => select_for_status(parsed, options, &mut refused),
        None => None,
    };
    let mut extensions = Vec::new();
    if let Some(parsed) = parsed {
        let names = parsed.extension_names().map_err(|e| Error::refused(&e));
        for name in tolerate(names, None, &mut refused)?.unwrap_or_default() {
            let settings = parsed.extension(&name).map_err(|e| Error::refused(&e));
            let settings = tolerate(settings, Some(&name), &mut refused)?;
            let proxy_service = settings.as_ref().map_or_else(
                || parsed.proxy_service_name(&name),
                |s| s.proxy_service_name.clone(),
            );
            let proxy = tolerate(
                read_proxy(api, &proxy_service).await,
                Some(&name),
                &mut refused,
            )?;
            extensions.push(SurveyedExtension {
                name,
                settings,
                proxy_service,
                proxy: match proxy {
                    Some(service) => Some(survey_proxy(api, service).await?),
                    None => None,
                },
            });
        }
    }
    let mut extension_services = Vec::new();
    let mut ucp_agent = None;
    let mut unclaimed_proxies = Vec::new();
    let services = api.services().await.map_err(swarm_failed)?;
    let extension_names: Vec<String> = parsed
        .map(|config| {
            extensions
                .iter()
                .map(|e| config.extension_service_name(&e.name))
                .collect()
        })
        .unwrap_or_default();
    for service in &services {
        if service.name == UCP_AGENT {
            ucp_agent = Some(service.clone());
        } else if extension_names.contains(&service.name) {
            extension_services.push(service.clone());
        }
    }
    let mut rejected_labels = Vec::new();
    for service in services {
        if let Some(record) = Record::of(&service.spec) {
            rejected_labels.push((service.name.clone(), record));
        }
        let labelled = service
            .spec
            .pointer(&format!("/Labels/{}", PROXY_LABEL.0))
            .and_then(serde_json::Value::as_str)
            == Some(PROXY_LABEL.1);
        if labelled && !extensions.iter().any(|e| e.proxy_service == service.name) {
            unclaimed_proxies.push(survey_proxy(api, service).await?);
        }
    }
    Ok(Survey {
        core,
        config,
        extensions,
        selected,
        unclaimed_proxies,
        nodes: api.nodes().await.map_err(swarm_failed)?,
        networks: api.networks().await.map_err(swarm_failed)?,
        extension_services,
        ucp_agent,
        refused,
        rejected_labels,
        taken_at: SystemTime::now(),
    })
}

/// The mounted config, its lineage and its parse; refusals become findings.
async fn survey_config<S: SwarmApi>(
    api: &S,
    core: &Service,
    refused: &mut Vec<Refused>,
) -> Result<Option<SurveyedConfig>> {
    let Some((name, id)) = tolerate(config_mount(core), None, refused)? else {
        return Ok(None);
    };
    let text = api.config_data(&id).await.map_err(swarm_failed)?;
    let (object, lineage) = read_lineage(api, &name, &id).await?;
    let parsed = tolerate(parse_config(&name, &text), None, refused)?;
    Ok(Some(SurveyedConfig {
        object,
        text,
        lineage,
        parsed,
    }))
}

/// The extension `--extension` names (a finding when it does not exist), else the only
/// one or `default`; none when the choice is ambiguous (every extension is shown anyway).
fn select_for_status(
    config: &InterlockConfig,
    options: &Options,
    refused: &mut Vec<Refused>,
) -> Option<String> {
    match config.select_extension(options.extension.as_deref()) {
        Ok(name) => Some(name),
        Err(error) if options.extension.is_some() => {
            refused.push(Refused {
                extension: None,
                problem: Problem::from_diagnostic(&error),
            });
            None
        }
        Err(_) => None,
    }
}

async fn survey_proxy<S: SwarmApi>(api: &S, service: Service) -> Result<SurveyedProxy> {
    let tasks = api.tasks(&service.id).await.map_err(swarm_failed)?;
    let history = api.task_history(&service.id).await.map_err(swarm_failed)?;
    Ok(SurveyedProxy {
        service,
        tasks,
        history,
    })
}
