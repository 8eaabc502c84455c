//! `sreg build` and `sreg push` run as child processes of this same binary,
//! so a build that crashes or is killed cannot take the agent down.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// This program, to run `sreg build` and `sreg push` with.
pub fn sreg_exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the sreg program itself")
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
