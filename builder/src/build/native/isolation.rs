//! `sreg __run-in-rootfs`: runs one command inside a root filesystem.
//!
//! The native backend starts this as a fresh process of the same binary, so
//! the namespace calls happen in a single-threaded process (a user
//! namespace cannot be entered by a threaded one) and nothing changes in
//! the builder itself. The modes:
//!
//! - `chroot`: a private mount namespace where `/proc`, `/sys`, `/dev`,
//!   `/etc/resolv.conf` and `/etc/hosts` of the host are bound into the
//!   root filesystem, then chroot. Root only. Nothing is mounted on the host:
//!   the mounts die with the namespace.
//! - `userns`: a user namespace where the caller is root (the only id
//!   mapped: files of other owners show as `nobody`), then as `chroot`.
//! - `proot`: `proot -0`, which needs no privilege at all.
//! - `auto`: as root, `chroot`; where a private mount namespace is refused
//!   (an unprivileged container) `proot` when installed, else a bare chroot
//!   without those mounts. As a user, `userns` when the kernel allows it,
//!   else `proot`.
//!
//! The command's environment is this process's, minus our own variables.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{chdir, chroot, getegid, geteuid};

use super::paths::inside;
use crate::build::tools;
use crate::cli::{Isolation, RunInRootfsArgs};

/// The builder passes the proot it found on its own PATH here (the
/// command's PATH is the image's).
pub const PROOT_VAR: &str = "SREG_PROOT";

/// What `auto` and the explicit modes come down to.
enum Plan {
    /// Mounts are set up; chroot next.
    Chroot,
    /// No mount namespace could be had: chroot alone.
    BareChroot,
    Proot(PathBuf),
}

pub fn run(args: &RunInRootfsArgs) -> Result<()> {
    let rootfs = std::fs::canonicalize(&args.rootfs)
        .with_context(|| format!("cannot find the root filesystem {}", args.rootfs.display()))?;
    let root = geteuid().is_root();
    let plan = match args.isolation {
        Isolation::Chroot => {
            if !root {
                bail!("--isolation chroot needs root: use userns or proot");
            }
            unshare(CloneFlags::CLONE_NEWNS)
                .map_err(|e| anyhow!("cannot make a private mount namespace: {e}"))?;
            mounts(&rootfs, args.read_only, true)?;
            Plan::Chroot
        }
        Isolation::Userns => {
            enter_user_namespace().map_err(|e| {
                anyhow!("cannot make a user namespace ({e}): use --isolation proot")
            })?;
            mounts(&rootfs, args.read_only, true)?;
            Plan::Chroot
        }
        Isolation::Proot => Plan::Proot(proot()?),
        Isolation::Auto if root => match unshare(CloneFlags::CLONE_NEWNS) {
            Ok(()) => {
                mounts(&rootfs, args.read_only, false)?;
                Plan::Chroot
            }
            Err(e) => fallback(e)?,
        },
        Isolation::Auto => match enter_user_namespace() {
            Ok(()) => {
                mounts(&rootfs, args.read_only, false)?;
                Plan::Chroot
            }
            Err(e) => Plan::Proot(proot().map_err(|p| {
                anyhow!("cannot make a user namespace ({e}), and proot is not there either: {p}")
            })?),
        },
    };
    let program = &args.command[0];
    let mut cmd = match plan {
        Plan::Proot(exe) => {
            let mut cmd = Command::new(exe);
            cmd.arg("-0").arg("-r").arg(&rootfs);
            for bound in ["/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hosts"] {
                if Path::new(bound).exists() {
                    cmd.args(["-b", bound]);
                }
            }
            if args.read_only {
                eprintln!(
                    "sreg: proot cannot make the root filesystem read-only; it stays writable"
                );
            }
            cmd.arg("-w").arg(&args.cwd).args(&args.command);
            cmd
        }
        Plan::Chroot | Plan::BareChroot => {
            chroot(&rootfs).map_err(|e| anyhow!("cannot chroot to {}: {e}", rootfs.display()))?;
            chdir(args.cwd.as_str())
                .map_err(|e| anyhow!("cannot enter {} in the image: {e}", args.cwd))?;
            let mut cmd = Command::new(program);
            cmd.args(&args.command[1..]);
            cmd
        }
    };
    cmd.env_remove(PROOT_VAR);
    let err = cmd.exec();
    Err(anyhow!("cannot run {program} in the image: {err}"))
}

/// `auto` as root where no mount namespace is allowed (a container without
/// CAP_SYS_ADMIN, as the docker backend runs us).
fn fallback(why: Errno) -> Result<Plan> {
    if let Ok(exe) = proot() {
        eprintln!("sreg: no private mount namespace here ({why}): running under proot");
        return Ok(Plan::Proot(exe));
    }
    eprintln!(
        "sreg: warning: no private mount namespace here ({why}) and proot is not installed: \
         chroot without /proc, /sys and /dev (install {} for those)",
        tools::package_of("proot")
    );
    Ok(Plan::BareChroot)
}

/// The proot the builder found on the host's PATH (ours is the image's).
fn proot() -> Result<PathBuf> {
    std::env::var_os(PROOT_VAR)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!(
                "proot is not installed (not found on PATH): install {}",
                tools::package_of("proot")
            )
        })
}

/// A user and mount namespace where the caller is root.
fn enter_user_namespace() -> Result<(), Errno> {
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
    let write = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
    };
    // Only the caller's own ids can be mapped from inside (a wider map needs
    // a helper outside, such as newuidmap); that needs setgroups denied.
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// The mounts of a build: the root filesystem read-only for `%test`, and
/// the host's kernel filesystems and name resolution bound in. `strict`:
/// a mount that fails is an error, else a warning.
fn mounts(rootfs: &Path, read_only: bool, strict: bool) -> Result<()> {
    let none: Option<&str> = None;
    // Nothing we mount may propagate back to the host: without that, no mounts.
    if let Err(e) = mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none) {
        if strict {
            bail!("cannot make the mounts private: {e}");
        }
        eprintln!("sreg: warning: cannot make the mounts private ({e}): chroot without mounts");
        return Ok(());
    }
    let report = |what: String, e: Errno| -> Result<()> {
        if strict {
            bail!("{what}: {e}");
        }
        eprintln!("sreg: warning: {what}: {e}");
        Ok(())
    };
    if read_only {
        let bind = mount(
            Some(rootfs),
            rootfs,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        );
        // In a user namespace the remount must keep the locked flags.
        let kept = statvfs(rootfs)
            .map(|s| locked_flags(s.flags()))
            .unwrap_or(MsFlags::empty());
        let ro = bind.and_then(|()| {
            mount(
                none,
                rootfs,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept,
                none,
            )
        });
        if let Err(e) = ro {
            report("cannot make the root filesystem read-only".into(), e)?;
        }
    }
    for dir in ["/proc", "/sys", "/dev"] {
        let target = inside(rootfs, dir)?;
        if !target.is_dir() {
            if let Err(e) = std::fs::create_dir_all(&target) {
                eprintln!("sreg: warning: cannot create {dir} in the image: {e}");
                continue;
            }
        }
        if let Err(e) = mount(
            Some(dir),
            &target,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        ) {
            report(format!("cannot bind {dir} into the image"), e)?;
        }
    }
    for file in ["/etc/resolv.conf", "/etc/hosts"] {
        let source = match std::fs::canonicalize(file) {
            Ok(s) if s.is_file() => s,
            _ => continue,
        };
        let target = inside(rootfs, file)?;
        // Only onto a plain file of the image: the base layout makes one.
        if !std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Err(e) = mount(Some(&source), &target, none, MsFlags::MS_BIND, none) {
            report(format!("cannot bind {file} into the image"), e)?;
        }
    }
    Ok(())
}

/// Mount flags a user namespace may not clear on a remount.
fn locked_flags(f: FsFlags) -> MsFlags {
    let mut out = MsFlags::empty();
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(st) {
            out |= ms;
        }
    }
    out
}

/// The arguments of `sreg __run-in-rootfs` for one command.
pub fn child_args(
    rootfs: &Path,
    isolation: Isolation,
    read_only: bool,
    cwd: &str,
    command: &[String],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "__run-in-rootfs".into(),
        "--rootfs".into(),
        rootfs.into(),
        "--isolation".into(),
        isolation_name(isolation).into(),
        "--cwd".into(),
        cwd.into(),
    ];
    if read_only {
        args.push("--read-only".into());
    }
    args.push("--".into());
    args.extend(command.iter().map(OsString::from));
    args
}

pub fn isolation_name(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Auto => "auto",
        Isolation::Chroot => "chroot",
        Isolation::Userns => "userns",
        Isolation::Proot => "proot",
    }
}
