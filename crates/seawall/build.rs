//! Build script: the git revision that `seawall --version` and `seawall_build_info` name,
//! as `SEAWALL_GIT_REVISION` for the crate.
//!
//! In order: the `SEAWALL_GIT_REVISION` environment variable (a build without the repository,
//! such as the Dockerfile's, passes it in); the commit recorded in `.cargo_vcs_info.json` (a
//! crate packaged by `cargo package`, as `cargo install seawall` unpacks it); `git rev-parse`
//! in a checkout, with `-dirty` when tracked files differ from it; else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SEAWALL_GIT_REVISION");
    let revision = std::env::var("SEAWALL_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(packaged)
        .or_else(checkout)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SEAWALL_GIT_REVISION={}", revision.trim());
}

/// The commit `cargo package` recorded, shortened like `git rev-parse --short=12`.
fn packaged() -> Option<String> {
    let info = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let after = info.split("\"sha1\"").nth(1)?;
    let sha = after.split('"').nth(1)?;
    let short: String = sha.chars().take(12).collect();
    (short.len() == 12 && short.chars().all(|c| c.is_ascii_hexdigit())).then_some(short)
}

/// `git rev-parse --short=12 HEAD` of the checkout, `-dirty` when a tracked file differs.
/// Rebuilt when HEAD moves, the branch gets a commit or the index changes.
fn checkout() -> Option<String> {
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    for path in ["HEAD", "index", "packed-refs"] {
        watch(git(&["rev-parse", "--git-path", path]));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(git(&["rev-parse", "--git-path", &branch]));
    }
    // Edits of this crate's own files (cargo would otherwise rerun only for those).
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn watch(path: Option<String>) {
    if let Some(path) = path.filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// The trimmed output of a successful `git` command.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
