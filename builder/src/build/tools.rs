//! External programs a build needs, found on PATH, with the package that
//! provides each when it is missing.

use std::path::PathBuf;

use anyhow::{Result, anyhow};

/// Debian/Ubuntu package of each tool we call.
const PACKAGES: &[(&str, &str)] = &[
    ("mksquashfs", "squashfs-tools"),
    ("unsquashfs", "squashfs-tools"),
    ("debootstrap", "debootstrap"),
    ("proot", "proot"),
    (
        "apptainer",
        "apptainer (https://apptainer.org/docs/admin/main/installation.html)",
    ),
    ("singularity", "singularity-ce (https://sylabs.io/docs/)"),
    ("sbatch", "slurm-client"),
    ("scontrol", "slurm-client"),
    ("scancel", "slurm-client"),
    ("git", "git"),
];

/// The package providing `tool`, for messages.
pub fn package_of(tool: &str) -> &'static str {
    PACKAGES
        .iter()
        .find(|(t, _)| *t == tool)
        .map(|(_, p)| *p)
        .unwrap_or("the package that provides it")
}

/// `tool` on PATH, or an error naming the package to install.
pub fn find(tool: &str) -> Result<PathBuf> {
    which::which(tool).map_err(|_| {
        anyhow!(
            "{tool} is not installed (not found on PATH): install {}",
            package_of(tool)
        )
    })
}

/// Whether `tool` is on PATH.
pub fn exists(tool: &str) -> bool {
    which::which(tool).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_package() {
        let err = find("mksquashfs-that-does-not-exist")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not installed"), "{err}");
        assert_eq!(package_of("mksquashfs"), "squashfs-tools");
        assert_eq!(package_of("sbatch"), "slurm-client");
    }
}
