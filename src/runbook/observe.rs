//! Observe: read what the runbook works on from the swarm (the engine's role and API
//! version, the core service, its config, the selected extension's proxy, the config lineage
//! and the nodes), and parse the live config. Reads only.

use crate::error::{Error, Result};
use crate::interlock::config::{ExtensionSettings, InterlockConfig};
use crate::runbook::Options;
use crate::runbook::plan::{self, CONFIG_TARGET, Observed};
use crate::runbook::preflight;
use crate::swarm::spec;
use crate::swarm::{OLDEST_API, SwarmApi, SwarmError};

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

/// Everything read from the swarm, with the live config parsed and its extension chosen.
pub struct LiveState {
    /// The observation the plan is computed from.
    pub observed: Observed,
    /// The live config.
    pub config: InterlockConfig,
    /// The selected extension.
    pub extension: String,
    /// Its settings in the live config.
    pub settings: ExtensionSettings,
}

/// Checks the engine, then reads the core, its config, the proxy, the lineage and the nodes.
pub async fn observe<S: SwarmApi>(api: &S, options: &Options) -> Result<LiveState> {
    check_engine(api).await?;
    let swarm_failed = |e: SwarmError| Error::failed(&e);
    let core = api
        .service(&options.core_service)
        .await
        .map_err(swarm_failed)?
        .ok_or_else(|| {
            Error::refused(&preflight::Missing::CoreService(
                options.core_service.clone(),
            ))
        })?;
    let (config_name, config_id) =
        spec::config_ref(&core.spec, CONFIG_TARGET).ok_or_else(|| {
            Error::refused(&preflight::Missing::ConfigMount(
                options.core_service.clone(),
            ))
        })?;
    let config_text = api.config_data(&config_id).await.map_err(swarm_failed)?;
    let config =
        InterlockConfig::parse(&config_name, &config_text).map_err(|e| Error::refused(&e))?;
    let extension = config
        .select_extension(options.extension.as_deref())
        .map_err(|e| Error::refused(&e))?;
    let settings = config
        .extension(&extension)
        .map_err(|e| Error::refused(&e))?;
    let proxy = api
        .service(&settings.proxy_service_name)
        .await
        .map_err(swarm_failed)?
        .ok_or_else(|| {
            Error::refused(&preflight::Missing::ProxyService(
                settings.proxy_service_name.clone(),
            ))
        })?;
    let base = plan::lineage_base(&config_name).to_owned();
    let all = api.configs(&base).await.map_err(swarm_failed)?;
    let current = all
        .iter()
        .find(|c| c.id == config_id)
        .cloned()
        .ok_or_else(|| {
            Error::failed(&SwarmError::Protocol {
                operation: "list configs".into(),
                message: format!("config {config_name} is mounted but not listed"),
            })
        })?;
    let lineage = all
        .into_iter()
        .filter(|c| plan::in_lineage(&base, &c.name))
        .collect();
    let nodes = api.nodes().await.map_err(swarm_failed)?;
    Ok(LiveState {
        observed: Observed {
            core,
            config: current,
            config_text,
            lineage,
            nodes,
            proxy,
        },
        config,
        extension,
        settings,
    })
}
