//! The base layout of an Apptainer image: `/.singularity.d` with its action
//! and environment scripts, the mount points the runtime binds onto, and
//! the links at the root that older runtimes call.
//!
//! Apptainer writes these into every root filesystem it builds before
//! `%post` runs (`makeBaseEnv`), without replacing what an image it builds
//! from already has; so do we. The scripts are ours, written to behave as
//! Apptainer's do (the runtime reads the same variables).

use std::path::Path;

use anyhow::Result;

use super::paths::{self, ensure_dir, inside, symlink_if_missing};

/// Folders every image has: Apptainer's metadata and the mount points.
const DIRS: &[&str] = &[
    ".singularity.d/actions",
    ".singularity.d/env",
    ".singularity.d/libs",
    "dev",
    "proc",
    "sys",
    "tmp",
    "var/tmp",
    "home",
    "root",
    "etc",
];

/// Sources every environment script in order (the runtime does the same).
const SOURCE_ENV: &str = r#"for env_script in /.singularity.d/env/*.sh; do
    if [ -f "$env_script" ]; then
        . "$env_script"
    fi
done
"#;

fn exec_action() -> String {
    format!(
        "#!/bin/sh\n# apptainer exec: the command, in the image's environment.\n{SOURCE_ENV}\nexec \"$@\"\n"
    )
}

fn run_action() -> String {
    format!(
        r#"#!/bin/sh
# apptainer run: the app's runscript with --app, else the image's.
{SOURCE_ENV}
app="${{APPTAINER_APPNAME:-${{SINGULARITY_APPNAME:-}}}}"
if [ -n "$app" ]; then
    for runscript in "/scif/apps/$app/scif/runscript" /scif/apps/singularity/scif/runscript; do
        if [ -x "$runscript" ]; then
            exec "$runscript" "$@"
        fi
    done
    echo "The app $app has no runscript in this image" >&2
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "This image has no runscript: starting /bin/sh" >&2
exec /bin/sh "$@"
"#
    )
}

fn shell_action() -> String {
    format!(
        r#"#!/bin/sh
# apptainer shell: the shell the user asked for, else bash, else sh.
{SOURCE_ENV}
wanted="${{APPTAINER_SHELL:-${{SINGULARITY_SHELL:-}}}}"
if [ -n "$wanted" ] && [ -x "$wanted" ]; then
    exec $wanted "$@"
fi
if [ -x /bin/bash ]; then
    SHELL=/bin/bash
    PS1="Apptainer> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
fi
if [ -x /bin/sh ]; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
fi
echo "This image has no /bin/sh" >&2
exit 1
"#
    )
}

fn start_action() -> String {
    format!(
        r#"#!/bin/sh
# apptainer instance start: the runtime's PID 1 waits for this signal.
kill -CONT 1
{SOURCE_ENV}
if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript
fi
"#
    )
}

fn test_action() -> String {
    format!(
        r#"#!/bin/sh
# apptainer test: the app's test with --app, else the image's %test.
{SOURCE_ENV}
app="${{APPTAINER_APPNAME:-${{SINGULARITY_APPNAME:-}}}}"
if [ -n "$app" ]; then
    for test_script in "/scif/apps/$app/scif/test" /scif/apps/singularity/scif/test; do
        if [ -x "$test_script" ]; then
            exec "$test_script" "$@"
        fi
    done
    echo "The app $app has no test in this image" >&2
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "This image has no test: nothing to run"
exit 0
"#
    )
}

const ENV_01_BASE: &str = "#!/bin/sh\n# Base environment of the image (empty on purpose).\n";

const ENV_90: &str = "#!/bin/sh\n# The recipe's %environment follows.\n";

const ENV_91: &str = "#!/bin/sh\n# What %post wrote to $APPTAINER_ENVIRONMENT follows.\n";

const ENV_95_APPS: &str = r#"#!/bin/sh
# With --app NAME: that SCIF app's folders and environment.
app="${APPTAINER_APPNAME:-${SINGULARITY_APPNAME:-}}"
if [ -n "$app" ]; then
    if [ ! -d "/scif/apps/$app" ]; then
        echo "This image has no app named $app" >&2
        exit 1
    fi
    SCIF_APPS=/scif/apps
    SCIF_APPROOT="/scif/apps/$app"
    export SCIF_APPS SCIF_APPROOT
    PATH="/scif/apps/$app:$PATH"
    if [ -d "/scif/apps/$app/bin" ]; then
        PATH="/scif/apps/$app/bin:$PATH"
    fi
    if [ -d "/scif/apps/$app/lib" ]; then
        LD_LIBRARY_PATH="/scif/apps/$app/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LD_LIBRARY_PATH
    fi
    for app_env in "/scif/apps/$app/scif/env/01-base.sh" "/scif/apps/$app/scif/env/90-environment.sh"; do
        if [ -f "$app_env" ]; then
            . "$app_env"
        fi
    done
    export PATH
fi
"#;

const ENV_99_BASE: &str = r#"#!/bin/sh
# Libraries the runtime binds in (GPU drivers...) come after the image's own.
LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/.singularity.d/libs"
PS1="Apptainer> "
export LD_LIBRARY_PATH PS1
"#;

const ENV_99_RUNTIMEVARS: &str = r#"#!/bin/sh
# PATH changes asked for on the command line (--env PATH=..., APPTAINERENV_PREPEND_PATH...)
# win over what the image's scripts set: the runtime passes them in these variables.
if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"
fi
if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"
fi
if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="$SING_USER_DEFINED_PATH"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
"#;

/// The runscript of an image whose recipe and source give none.
pub const DEFAULT_RUNSCRIPT: &str =
    "#!/bin/sh\necho \"This image has no runscript (its recipe has no %runscript).\"\n";

const DEFAULT_STARTSCRIPT: &str = "#!/bin/sh\n";

/// Writes the base layout into `rootfs`, keeping every file already there.
pub fn write_base(rootfs: &Path) -> Result<()> {
    for dir in DIRS {
        ensure_dir(rootfs, dir)?;
    }
    let files: [(&str, String, u32); 16] = [
        ("etc/hosts", String::new(), 0o644),
        ("etc/resolv.conf", String::new(), 0o644),
        (".singularity.d/actions/exec", exec_action(), 0o755),
        (".singularity.d/actions/run", run_action(), 0o755),
        (".singularity.d/actions/shell", shell_action(), 0o755),
        (".singularity.d/actions/start", start_action(), 0o755),
        (".singularity.d/actions/test", test_action(), 0o755),
        (".singularity.d/env/01-base.sh", ENV_01_BASE.into(), 0o755),
        (".singularity.d/env/90-environment.sh", ENV_90.into(), 0o755),
        (".singularity.d/env/91-environment.sh", ENV_91.into(), 0o755),
        (
            ".singularity.d/env/94-appsbase.sh",
            "#!/bin/sh\n".into(),
            0o755,
        ),
        (".singularity.d/env/95-apps.sh", ENV_95_APPS.into(), 0o755),
        (".singularity.d/env/99-base.sh", ENV_99_BASE.into(), 0o755),
        (
            ".singularity.d/env/99-runtimevars.sh",
            ENV_99_RUNTIMEVARS.into(),
            0o755,
        ),
        (".singularity.d/runscript", DEFAULT_RUNSCRIPT.into(), 0o755),
        (
            ".singularity.d/startscript",
            DEFAULT_STARTSCRIPT.into(),
            0o755,
        ),
    ];
    for (rel, content, mode) in files {
        let path = inside(rootfs, rel)?;
        // A dangling link (a resolv.conf pointing at /run/...) counts as missing.
        if !path.exists() {
            paths::replace_file(&path, content.as_bytes(), mode)?;
        }
    }
    let links = [
        (".singularity.d/runscript", "singularity"),
        (".singularity.d/env/90-environment.sh", "environment"),
        (".singularity.d/actions/exec", ".exec"),
        (".singularity.d/actions/run", ".run"),
        (".singularity.d/actions/shell", ".shell"),
        (".singularity.d/actions/test", ".test"),
    ];
    for (target, link) in links {
        symlink_if_missing(target, &rootfs.join(link))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layout_keeps_what_the_image_has() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
        std::fs::write(
            root.join(".singularity.d/runscript"),
            "#!/bin/sh\necho mine\n",
        )
        .unwrap();
        write_base(root).unwrap();
        write_base(root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join(".singularity.d/runscript")).unwrap(),
            "#!/bin/sh\necho mine\n"
        );
        assert!(root.join(".singularity.d/actions/run").is_file());
        assert!(root.join("etc/resolv.conf").is_file());
        assert_eq!(
            std::fs::read_link(root.join("singularity")).unwrap(),
            Path::new(".singularity.d/runscript")
        );
    }
}
