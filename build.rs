//! Build script: records the git commit the binary is built from, for `--version` (issue #16).
//!
//! `TRUSTBRIDGE_COMMIT` in the build environment wins (image builds without `.git`); else
//! `git rev-parse --short HEAD`; else `unknown`. It reads nothing else and never fails the
//! build.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TRUSTBRIDGE_COMMIT");
    let commit = std::env::var("TRUSTBRIDGE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TRUSTBRIDGE_COMMIT={commit}");
    // Rebuild when HEAD moves: the HEAD file (a branch switch) and the branch's ref (a commit),
    // wherever this checkout (or worktree) keeps them.
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let mut watch = vec![
            PathBuf::from(&git_dir).join("HEAD"),
            PathBuf::from(&common).join("packed-refs"),
        ];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(PathBuf::from(&common).join(branch));
        }
        // A missing file would make cargo rerun this script on every build.
        for path in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
