//! A copy of the state before the first change, on the operator's machine: the live config
//! TOML and the specs of the services the run may change or remove, as the engine returned
//! them. Swarm keeps only one previous spec per service, and configs can be pruned; this copy
//! outlives both.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
/// command; returns that directory. The directory is private (0700) and so are its files
/// (0600), whatever the umask: they hold the config's secrets. Two runs in the same second
/// get two directories (`-2`, `-3`, ... after the second one's name), never one.
pub fn write(root: &Path, command: &str, observed: &Observed) -> Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "");
    let name = format!("{stamp}-{}", command.replace(' ', "-"));
    let proxy = observed.proxy.as_ref().map(|p| &p.name);
    let others = observed.others.iter().filter(|s| Some(&s.name) != proxy);
    let services = std::iter::once(&observed.core)
        .chain(&observed.proxy)
        .chain(&observed.retired)
        .chain(others);
    let files: Vec<(String, String)> = std::iter::once((
        format!("{}.toml", observed.config.name),
        observed.config_text.clone(),
    ))
    .chain(services.map(|s| (format!("{}.spec.json", s.name), pretty(&s.spec))))
    .collect();
    // Refused like a failed preflight check: nothing was changed yet, and nothing will be.
    let failed = |dir: &Path, error: std::io::Error| {
        Error::refusal(
            "backup_failed",
            format!("cannot write the backup to {}: {error}", dir.display()),
            Some("pass `--backup-dir DIR` with a writable directory; nothing was changed".into()),
        )
    };
    let dir = create_private_dir(root, &name).map_err(|error| failed(&root.join(&name), error))?;
    files
        .iter()
        .try_for_each(|(file, text)| write_private_file(&dir.join(file), text))
        .map_err(|error| failed(&dir, error))?;
    Ok(dir)
}

/// Creates `root/name`, or `root/name-2`, `root/name-3`, ... when taken, with mode 0700.
/// Creating (never reusing) a directory is what makes it this run's own.
fn create_private_dir(root: &Path, name: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    let mut dir = root.join(name);
    let mut attempt = 1;
    loop {
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => break,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                attempt += 1;
                dir = root.join(format!("{name}-{attempt}"));
            }
            Err(error) => return Err(error),
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Writes a new file with mode 0600 (never more open while it is written).
fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

fn pretty(spec: &serde_json::Value) -> String {
    serde_json::to_string_pretty(spec).expect("a JSON value serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn each_run_gets_its_own_private_directory_of_private_files() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().join("backups");
        let observed = crate::testing::observed();
        let dirs: Vec<PathBuf> = (0..3)
            .map(|_| write(&root, "pin-proxy", &observed).unwrap())
            .collect();
        let names: std::collections::BTreeSet<&std::ffi::OsStr> =
            dirs.iter().map(|dir| dir.file_name().unwrap()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for dir in &dirs {
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
            let entries = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path());
            let files: Vec<PathBuf> = entries.collect();
            assert_eq!(files.len(), 3, "{files:?}");
            for file in files {
                assert_eq!(mode(&file), 0o600, "{}", file.display());
            }
        }
    }

    #[test]
    fn an_upgrade_backs_up_every_service_it_may_change_once() {
        let root = tempfile::tempdir().unwrap();
        let mut observed = crate::testing::observed();
        let extension = crate::testing::service(
            "extension",
            serde_json::json!({"Name": "ucp-interlock-extension"}),
        );
        observed.others = vec![extension, observed.proxy.clone().unwrap()];
        let dir = write(root.path(), "upgrade", &observed).unwrap();
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "com.docker.ucp.interlock.conf-1.toml",
                "ucp-interlock-extension.spec.json",
                "ucp-interlock-proxy.spec.json",
                "ucp-interlock.spec.json"
            ]
        );
    }

    #[test]
    fn a_taken_name_moves_to_the_next_number() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("stamp-host-mode-2")).unwrap();
        let created: Vec<String> = (0..3)
            .map(|_| create_private_dir(root.path(), "stamp-host-mode").unwrap())
            .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            created,
            ["stamp-host-mode", "stamp-host-mode-3", "stamp-host-mode-4"]
        );
    }

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
