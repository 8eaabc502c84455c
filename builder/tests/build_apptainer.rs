//! `sreg build --backend apptainer|singularity|auto` against a STAND-IN
//! apptainer (see `stand_in`), as Apptainer cannot be installed on the test
//! machine. What is tested is sreg's side: the command line, the log, the
//! exit status, the timeout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sreg_tests::bin;

mod stand_in;
use stand_in::{Behaviour, StandIn};

/// A recipe folder with a recipe using a build argument.
fn recipe_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("Singularity");
    std::fs::write(
        &recipe,
        "Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n\n%labels\n    Version {{ VERSION }}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    (dir, recipe)
}

fn sreg_build(stand_in: &StandIn, args: &[&str]) -> Output {
    Command::new(bin("sreg"))
        .arg("build")
        .args(args)
        .env("PATH", stand_in.path_var())
        .env_remove("SREG_BUILD_BACKEND")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn record(image: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(image.with_extension("build.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Nothing but the log (and the recipe) is left in `dir`.
fn assert_only_log_left(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "Singularity" && n != "hello.txt" && !n.ends_with(".build.log"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn apptainer_backend_with_stand_in_apptainer_passes_build_args_and_notest() {
    let stand_in = StandIn::new("apptainer", Behaviour::Build);
    let (dir, recipe) = recipe_dir();
    let out = dir.path().join("img.sif");
    let result = sreg_build(
        &stand_in,
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "apptainer",
            "--build-arg",
            "VERSION=3.20",
            "--notest",
        ],
    );
    assert!(result.status.success(), "{}", text(&result));

    let argv = stand_in.argv();
    assert_eq!(argv[0], "build");
    assert_eq!(argv.contains(&"--fakeroot".to_string()), !is_root());
    assert!(argv.contains(&"--notest".to_string()), "{argv:?}");
    let at = argv.iter().position(|a| a == "--build-arg").unwrap();
    assert_eq!(argv[at + 1], "VERSION=3.20");
    // Apptainer gets the recipe as written (it substitutes the arguments
    // itself) and writes a partial file beside OUT.
    assert_eq!(argv.last().unwrap(), recipe.to_str().unwrap());
    let image = Path::new(&argv[argv.len() - 2]);
    assert_eq!(image.parent(), Some(dir.path()));
    assert!(
        image
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".img.sif.partial-")
    );
    assert_eq!(
        stand_in.recorded("cwd").trim(),
        dir.path().to_str().unwrap()
    );

    let listing = Command::new("siftool")
        .arg("list")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("Squashfs/*System/amd64"),
        "{}",
        text(&listing)
    );
    // The build argument reached the image.
    let inspect = Command::new(bin("sreg"))
        .arg("inspect")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains("Version: 3.20"),
        "{}",
        text(&inspect)
    );
    let rec = record(&out);
    assert_eq!(rec["backend"], "apptainer");
    assert_eq!(rec["backend_version"], "1.9.9-stand-in");
    assert_eq!(rec["build_args"]["VERSION"], "3.20");
    let log = std::fs::read_to_string(dir.path().join("img.build.log")).unwrap();
    assert!(
        log.contains("INFO:    Starting build (stand-in apptainer)"),
        "{log}"
    );
    assert!(log.contains("INFO:    Build complete"), "{log}");
}

#[test]
fn auto_backend_picks_stand_in_apptainer_and_else_stand_in_singularity() {
    for program in ["apptainer", "singularity"] {
        let stand_in = StandIn::new(program, Behaviour::Build);
        let (dir, recipe) = recipe_dir();
        let out = dir.path().join("img.sif");
        let result = sreg_build(
            &stand_in,
            &[
                recipe.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--build-arg",
                "VERSION=3.20",
            ],
        );
        assert!(result.status.success(), "{program}: {}", text(&result));
        assert!(!stand_in.argv().contains(&"--notest".to_string()));
        let rec = record(&out);
        assert_eq!(rec["backend"], program);
        assert_eq!(rec["backend_version"], "1.9.9-stand-in");
    }
}

#[test]
fn failing_stand_in_apptainer_fails_the_build_with_its_message() {
    let stand_in = StandIn::new("apptainer", Behaviour::Fail);
    let (dir, recipe) = recipe_dir();
    let out = dir.path().join("img.sif");
    let result = sreg_build(
        &stand_in,
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "apptainer",
            "--build-arg",
            "VERSION=3.20",
            "--quiet",
        ],
    );
    assert!(!result.status.success(), "{}", text(&result));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("apptainer build failed"), "{stderr}");
    assert!(stderr.contains("stand-in conveyor failed"), "{stderr}");
    assert!(stderr.contains("img.build.log"), "{stderr}");
    let log = std::fs::read_to_string(dir.path().join("img.build.log")).unwrap();
    assert!(
        log.contains("FATAL:   While performing build: stand-in conveyor failed"),
        "{log}"
    );
    assert_only_log_left(dir.path());
}

#[test]
fn timeout_stops_a_sleeping_stand_in_apptainer_and_its_child() {
    let stand_in = StandIn::new("apptainer", Behaviour::Sleep);
    let (dir, recipe) = recipe_dir();
    let out = dir.path().join("img.sif");
    let started = Instant::now();
    let result = sreg_build(
        &stand_in,
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "apptainer",
            "--build-arg",
            "VERSION=3.20",
            "--timeout",
            "2s",
        ],
    );
    let took = started.elapsed();
    assert!(!result.status.success(), "{}", text(&result));
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("--timeout 2s"),
        "{}",
        text(&result)
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    for who in ["pid", "child.pid"] {
        let pid = stand_in.recorded(who).trim().to_string();
        // The container's init may take a moment to reap the killed processes.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat.split_whitespace().nth(2) == Some("Z"),
            }
        });
        assert!(gone, "the stand-in's {who} {pid} outlived the timeout");
    }
    assert_only_log_left(dir.path());
}
