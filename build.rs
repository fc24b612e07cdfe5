//! Build script: records the git commit a build comes from (for `--version`), and turns
//! `INTERLOCKCTL_SKIP_LAB=1` into the `skip_lab` cfg, which marks the end-to-end tests as
//! ignored so a run without the lab counts them as such in its summary.
//!
//! Building without git, or from a source tarball (no `.git`, or unpacked inside another
//! repository), is fine: the version then names no commit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skip_lab)");
    println!("cargo::rerun-if-env-changed=INTERLOCKCTL_SKIP_LAB");
    if std::env::var_os("INTERLOCKCTL_SKIP_LAB").is_some_and(|value| value == "1") {
        println!("cargo::rustc-cfg=skip_lab");
    }
    if let Some(commit) = git_commit() {
        println!("cargo::rustc-env=INTERLOCKCTL_GIT_COMMIT={commit}");
    }
}

/// The commit checked out, when this crate is the top of a git checkout; asks cargo to run
/// the script again when `HEAD` or the branch it is on moves.
fn git_commit() -> Option<String> {
    let crate_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let toplevel = git(&crate_dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&toplevel).canonicalize().ok()? != crate_dir.canonicalize().ok()? {
        return None;
    }
    let git_path = |name: &str| {
        git(&crate_dir, &["rev-parse", "--git-path", name]).map(|path| crate_dir.join(path))
    };
    let branch = git(&crate_dir, &["rev-parse", "--symbolic-full-name", "HEAD"])?;
    let branch_ref = git_path(&branch)?;
    // A packed ref has no file yet; the first commit creates it in this directory.
    let branch_ref = match (branch_ref.exists(), branch_ref.parent()) {
        (false, Some(directory)) => directory.to_owned(),
        _ => branch_ref,
    };
    for path in [git_path("HEAD")?, branch_ref, git_path("packed-refs")?] {
        // A path that does not exist would make cargo run the script on every build.
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    git(&crate_dir, &["rev-parse", "--short=12", "HEAD"])
}

/// `git ARGS` in `dir`: its trimmed output, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
