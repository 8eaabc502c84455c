//! `sreg build` and `sreg push` run as child processes of this same binary,
//! so a build that crashes or is killed cannot take the agent down.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::BackendKind;

/// This program, to run `sreg build` and `sreg push` with.
pub fn sreg_exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the sreg program itself")
}

/// The backend's name on the command line.
pub fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Auto => "auto",
        BackendKind::Apptainer => "apptainer",
        BackendKind::Singularity => "singularity",
        BackendKind::Native => "native",
        BackendKind::Docker => "docker",
        BackendKind::Slurm => "slurm",
    }
}

/// Arguments of `sreg build RECIPE -o OUT --backend B`: quiet (the log
/// goes to OUT's `.build.log`) and replacing an older OUT.
pub fn build_args(recipe: &Path, out: &Path, backend: &str) -> Vec<std::ffi::OsString> {
    vec![
        "build".into(),
        recipe.into(),
        "-o".into(),
        out.into(),
        "--backend".into(),
        backend.into(),
        "--quiet".into(),
        "--force".into(),
    ]
}

/// Arguments of `sreg push OUT REF --meta K=V...`.
pub fn push_args(image: &Path, reference: &str, meta: &[(&str, &str)]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["push".into(), image.into(), reference.into()];
    for (k, v) in meta {
        args.push("--meta".into());
        args.push(format!("{k}={v}").into());
    }
    args
}

/// The last `n` lines of a file (lossy UTF-8), for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    last_lines(&text, n)
}

pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_lines_of_a_text() {
        assert_eq!(super::last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(super::last_lines("a", 5), "a");
        assert_eq!(super::last_lines("", 5), "");
    }
}
