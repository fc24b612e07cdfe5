//! A copy of the state before the first change, on the operator's machine: the live config
//! TOML and the specs of the services the run may change or remove, as the engine
//! returned them. Swarm keeps only one previous
//! spec per service, and configs can be pruned; this copy outlives both.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::runbook::plan::Observed;

/// Where backups go unless `--backup-dir` says otherwise: `$XDG_STATE_HOME/interlockctl/backups`,
/// else `~/.local/state/interlockctl/backups`.
pub fn default_root(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let state = env("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| Path::new(&home).join(".local/state"))
        })?;
    Some(state.join("interlockctl/backups"))
}

/// Writes the backup into a new directory under `root` named after the time and the
/// command; returns that directory.
pub fn write(root: &Path, command: &str, observed: &Observed) -> Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "");
    let dir = root.join(format!("{stamp}-{}", command.replace(' ', "-")));
    let services = std::iter::once(&observed.core)
        .chain(&observed.proxy)
        .chain(&observed.retired);
    let files: Vec<(String, String)> = std::iter::once((
        format!("{}.toml", observed.config.name),
        observed.config_text.clone(),
    ))
    .chain(services.map(|s| (format!("{}.spec.json", s.name), pretty(&s.spec))))
    .collect();
    std::fs::create_dir_all(&dir)
        .and_then(|()| {
            files
                .iter()
                .try_for_each(|(name, text)| std::fs::write(dir.join(name), text))
        })
        .map_err(|error| {
            Error::other(
                "backup_failed",
                format!("cannot write the backup to {}: {error}", dir.display()),
                Some(
                    "pass `--backup-dir DIR` with a writable directory; nothing was changed".into(),
                ),
            )
        })?;
    Ok(dir)
}

fn pretty(spec: &serde_json::Value) -> String {
    serde_json::to_string_pretty(spec).expect("a JSON value serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_root_prefers_xdg_state_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            default_root(&env(&[("XDG_STATE_HOME", "/state"), ("HOME", "/home/op")])),
            Some(PathBuf::from("/state/interlockctl/backups"))
        );
        assert_eq!(
            default_root(&env(&[("XDG_STATE_HOME", ""), ("HOME", "/home/op")])),
            Some(PathBuf::from("/home/op/.local/state/interlockctl/backups"))
        );
        assert_eq!(default_root(&env(&[])), None);
    }
}
