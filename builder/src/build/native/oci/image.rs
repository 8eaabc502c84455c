//! What an OCI or Docker image is once fetched, wherever it came from (a
//! registry, an OCI layout, a `docker save` archive): its config and its
//! layer files in order. Also the choice of a platform in an image index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::layers;
use crate::build::job::Job;
use crate::build::native::bootstrap::SourceConfig;

/// An image ready to unpack.
pub struct FetchedImage {
    /// The config blob (JSON).
    pub config: Vec<u8>,
    /// Layer files, lowest first, digests verified.
    pub layers: Vec<PathBuf>,
    /// The reference as resolved, with the manifest's digest.
    pub resolved: String,
}

/// The parts of an image config (OCI or Docker) that matter to a build.
/// Lenient on purpose: images in the wild leave out or null most fields.
#[derive(Debug, Default, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Reads an image config into what the build keeps of it.
pub fn source_config(config: &[u8], resolved: &str) -> Result<SourceConfig> {
    let parsed: ImageConfig =
        serde_json::from_slice(config).context("the image config is not valid JSON")?;
    let run = parsed.config.unwrap_or_default();
    let arch = parsed.architecture.filter(|a| !a.is_empty());
    Ok(SourceConfig {
        env: run.env.unwrap_or_default(),
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        working_dir: run.working_dir.filter(|w| !w.is_empty()),
        labels: run.labels.unwrap_or_default(),
        arch,
        resolved: Some(resolved.to_string()),
    })
}

/// The build host's platform in GOARCH terms (`amd64`, `arm64`...), and
/// the CPU variant to prefer (`v8` on arm64).
pub fn host_platform() -> (&'static str, Option<&'static str>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "loongarch64" => ("loong64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        other => (other, None),
    }
}

/// One entry of an image index, as far as choosing goes.
#[derive(Debug, Default, Clone)]
pub struct Candidate {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

/// The entry of an image index for the build host: `linux` and the host's
/// architecture, the preferred variant first, then one without a variant,
/// then any. `None` with the list of what there is, for the error.
pub fn choose_platform(candidates: &[Candidate]) -> std::result::Result<usize, String> {
    let (arch, variant) = host_platform();
    let fits = |c: &Candidate| c.os == "linux" && c.arch == arch;
    let found = candidates
        .iter()
        .position(|c| fits(c) && variant.is_some() && c.variant.as_deref() == variant)
        .or_else(|| {
            candidates
                .iter()
                .position(|c| fits(c) && c.variant.is_none())
        })
        .or_else(|| candidates.iter().position(fits));
    found.ok_or_else(|| {
        let there: Vec<String> = candidates
            .iter()
            .map(|c| match &c.variant {
                Some(v) => format!("{}/{}/{v}", c.os, c.arch),
                None => format!("{}/{}", c.os, c.arch),
            })
            .collect();
        format!(
            "the image has no linux/{arch} variant (it has {})",
            if there.is_empty() {
                "no platforms listed".to_string()
            } else {
                there.join(", ")
            }
        )
    })
}

/// `sha256:<hex>` of a file, to check what came from disk or a tar.
pub fn file_digest(path: &Path) -> Result<String> {
    Ok(format!("sha256:{}", crate::build::hash_file(path)?.1))
}

/// Checks that a file has the digest its manifest gives.
pub fn verify_digest(path: &Path, expected: &str) -> Result<()> {
    let Some(_) = expected.strip_prefix("sha256:") else {
        bail!("unsupported digest {expected}: only sha256 is supported");
    };
    let actual = file_digest(path)?;
    if actual != expected {
        bail!(
            "{} does not match its digest: expected {expected}, got {actual}",
            path.display()
        );
    }
    Ok(())
}

/// Applies the image's layers to `rootfs`, lowest first, in a blocking
/// thread, and gives back what the image config says.
pub async fn unpack(job: &Job<'_>, image: FetchedImage, rootfs: &Path) -> Result<SourceConfig> {
    let source = source_config(&image.config, &image.resolved)?;
    let as_root = nix::unistd::geteuid().is_root();
    let total = image.layers.len();
    for (i, layer) in image.layers.into_iter().enumerate() {
        let rootfs = rootfs.to_path_buf();
        let cancel: CancellationToken = job.cancel.clone();
        let started = std::time::Instant::now();
        let shown = layer.clone();
        let (applied, compression) = tokio::task::spawn_blocking(move || {
            let (reader, compression) = layers::open(&layer)?;
            layers::apply(&rootfs, reader, as_root, &cancel).map(|a| (a, compression))
        })
        .await
        .context("the layer unpacker stopped")?
        .with_context(|| format!("cannot apply layer {} of {total}", i + 1))?;
        job.log.line(format!(
            "applied layer {}/{total} ({compression:?}, {} entries, {} whiteouts, {} of files) in {:.1} s",
            i + 1,
            applied.entries,
            applied.whiteouts,
            human_bytes(applied.bytes),
            started.elapsed().as_secs_f64()
        ));
        for skipped in applied.skipped.iter().take(20) {
            job.log.line(format!("  left out {skipped}"));
        }
        if applied.skipped.len() > 20 {
            job.log.line(format!(
                "  ... and {} more left out",
                applied.skipped.len() - 20
            ));
        }
        // A downloaded layer is no longer needed: free the space now. Files
        // of a layout the user gave stay.
        if shown.starts_with(&job.work_dir) {
            let _ = std::fs::remove_file(&shown);
        }
    }
    Ok(source)
}

/// `12.3 MiB`, for the log.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields_are_read_and_nulls_tolerated() {
        let cfg = br#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["PATH=/bin","A=b c"],"Entrypoint":null,"Cmd":["/bin/sh","-c","echo hi"],
                      "WorkingDir":"","Labels":{"k":"v"}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let s = source_config(cfg, "r@sha256:x").unwrap();
        assert_eq!(s.env, ["PATH=/bin", "A=b c"]);
        assert!(s.entrypoint.is_empty());
        assert_eq!(s.cmd, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(s.working_dir, None);
        assert_eq!(s.labels["k"], "v");
        assert_eq!(s.arch.as_deref(), Some("amd64"));
        assert!(source_config(b"not json", "r").is_err());
        assert_eq!(source_config(b"{}", "r").unwrap().arch, None);
    }

    #[test]
    fn the_host_platform_is_chosen_and_a_missing_one_is_named() {
        let (arch, _) = host_platform();
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let c = |os: &str, arch: &str| Candidate {
            os: os.into(),
            arch: arch.into(),
            variant: None,
        };
        let list = [c("windows", arch), c("linux", other), c("linux", arch)];
        assert_eq!(choose_platform(&list), Ok(2));
        let err = choose_platform(&list[..2]).unwrap_err();
        assert!(err.contains(&format!("no linux/{arch}")), "{err}");
        assert!(err.contains(&format!("linux/{other}")), "{err}");
    }
}
