//! A STAND-IN for apptainer and singularity, shared by the tests that need
//! one: Apptainer cannot be installed on the test machine, so a shell script
//! named `apptainer` (or `singularity`) first on PATH records the command
//! line and working folder it is given, and writes a real SIF with sreg's
//! native backend, passing on the build arguments and `--notest`.

#![allow(dead_code)] // each test binary uses a part

/// What the stand-in does after recording its call.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Writes a SIF and exits 0.
    Build,
    /// Prints a FATAL line and exits 255, as Apptainer does.
    Fail,
    /// Starts a `sleep 60` child and waits for it.
    Sleep,
}

/// A folder with a stand-in `program` in `bin/`, and what it recorded in `record/`.
pub struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    pub fn new(program: &str, behaviour: Behaviour) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = dir.path().join("bin");
        let record = dir.path().join("record");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&record).unwrap();
        let act = match behaviour {
            Behaviour::Build => {
                r#"# The image and recipe come last; --build-arg and --notest go to
# sreg's native backend, which writes the image.
args=("$@"); n=${#args[@]}
image=${args[n-2]}; recipe=${args[n-1]}
native=()
for ((i = 1; i < n - 2; i++)); do
    case "${args[i]}" in
        --build-arg) native+=(--build-arg "${args[i+1]}"); i=$((i + 1)) ;;
        --tmpdir) i=$((i + 1)) ;;
        --notest) native+=(--notest) ;;
    esac
done
out=$(mktemp -d)
"$sreg" build --backend native "$recipe" -o "$out/image.sif" "${native[@]}" || exit 255
mv "$out/image.sif" "$image"
rm -rf "$out"
echo "INFO:    Build complete: $image""#
            }
            Behaviour::Fail => {
                r#"echo "FATAL:   While performing build: stand-in conveyor failed" >&2
exit 255"#
            }
            Behaviour::Sleep => {
                r#"sleep 60 &
echo $! > "$rec/child.pid"
wait"#
            }
        };
        let script = format!(
            r#"#!/bin/bash
# Stand-in for {program}, which cannot be installed on the test machine.
rec='{record}'
sreg='{sreg}'
if [ "$1" = --version ]; then echo "{program} version 1.9.9-stand-in"; exit 0; fi
printf '%s\n' "$@" > "$rec/argv"
pwd > "$rec/cwd"
echo $$ > "$rec/pid"
echo "INFO:    Starting build (stand-in {program})"
{act}
"#,
            record = record.display(),
            sreg = sreg_tests::bin("sreg").display(),
        );
        let path = bin_dir.join(program);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        StandIn { dir }
    }

    /// PATH with the stand-in first.
    pub fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    pub fn recorded(&self, what: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("record").join(what))
            .unwrap_or_else(|e| panic!("the stand-in recorded no {what}: {e}"))
    }

    pub fn argv(&self) -> Vec<String> {
        self.recorded("argv").lines().map(str::to_string).collect()
    }
}
