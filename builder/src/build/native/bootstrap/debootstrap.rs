//! `Bootstrap: debootstrap`: a minimal Debian or Ubuntu system made by
//! `debootstrap --variant=minbase` from `OSVersion:` (the suite) and
//! `MirrorURL:`, with the packages of `Include:` (and apt) added, as
//! Apptainer does. debootstrap needs root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use sreg_recipe::Stage;
use tokio::process::Command;

use super::SourceConfig;
use crate::build::job::Job;
use crate::build::tools;

/// Debian's name for the architecture this program runs on.
fn debian_arch() -> Option<&'static str> {
    Some(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// `Include:` words (blank- or comma-separated) as debootstrap's list, with apt.
fn include_list(include: Option<&str>) -> String {
    let mut pkgs = vec!["apt".to_string()];
    for p in include
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        if !pkgs.iter().any(|q| q == p) {
            pkgs.push(p.to_string());
        }
    }
    pkgs.join(",")
}

pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let line = stage.line();
    let suite = stage
        .get("osversion")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            anyhow!("line {line}: `Bootstrap: debootstrap` needs `OSVersion:` (such as bookworm)")
        })?;
    let mirror = stage
        .get("mirrorurl")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("line {line}: `Bootstrap: debootstrap` needs `MirrorURL:` (such as http://deb.debian.org/debian)"))?;
    let exe = tools::find("debootstrap")?;
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "line {line}: `Bootstrap: debootstrap` needs root (debootstrap creates device nodes \
             and changes owners): run sreg build as root, or build with --backend docker"
        );
    }
    let arch = debian_arch().ok_or_else(|| {
        anyhow!(
            "debootstrap: no Debian architecture is known for {}",
            std::env::consts::ARCH
        )
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", include_list(stage.get("include"))))
        .arg(format!("--arch={arch}"))
        .arg(suite)
        .arg(rootfs)
        .arg(mirror);
    job.log
        .line(format!("debootstrap {suite} from {mirror} ({arch})"));
    let status = job.log.run(cmd, &job.cancel).await?;
    if !status.success() {
        let detail = rootfs.join("debootstrap/debootstrap.log");
        if let Ok(text) = std::fs::read_to_string(&detail) {
            job.log.line("--- debootstrap.log ---");
            job.log.bytes(text.as_bytes());
        }
        bail!("debootstrap {suite} from {mirror} failed ({status})");
    }
    std::fs::set_permissions(rootfs, std::fs::Permissions::from_mode(0o755))?;
    Ok(SourceConfig {
        arch: sreg_sif::Arch::from_name(std::env::consts::ARCH).map(|a| a.name().to_string()),
        resolved: Some(format!("{mirror} {suite}")),
        ..SourceConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_lists_start_with_apt() {
        assert_eq!(include_list(None), "apt");
        assert_eq!(include_list(Some("curl, git  vim,apt")), "apt,curl,git,vim");
    }
}
