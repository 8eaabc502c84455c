//! `sreg build --backend slurm` against a real single-node Slurm cluster
//! (slurmctld + slurmd + munged, started by the tests, see
//! `sreg_tests::slurm`). The job runs the same `sreg` binary on the node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sreg_tests::bin;
use sreg_tests::slurm::Cluster;

mod stand_in;
use stand_in::{Behaviour, StandIn};

/// Makes `/bin/sh` and `sleep` (busybox) in an empty root filesystem, so
/// `%post` can run without a base image.
const BUSYBOX_SETUP: &str = "%setup
    mkdir -p \"$APPTAINER_ROOTFS/bin\"
    cp /bin/busybox \"$APPTAINER_ROOTFS/bin/busybox\"
    for applet in sh sleep echo; do ln -s busybox \"$APPTAINER_ROOTFS/bin/$applet\"; done
";

/// A recipe folder: `Singularity` with `body`, and a `hello.txt` for %files.
fn recipe(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.txt"),
        "hello from the recipe folder\n",
    )
    .unwrap();
    let recipe = dir.path().join("Singularity");
    std::fs::write(&recipe, body).unwrap();
    (dir, recipe)
}

fn sreg_build(cluster: &Cluster, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(bin("sreg"))
        .arg("build")
        .args(args)
        .env("SLURM_CONF", cluster.conf())
        .env_remove("SREG_BUILD_BACKEND")
        .envs(env.iter().copied())
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

/// The job id from the log line `slurm ...: submitted job N (...)`.
fn job_id(log: &str) -> String {
    let at = log.find("submitted job ").expect("the log names the job") + 14;
    log[at..].split_whitespace().next().unwrap().to_string()
}

/// What is in `dir` besides the recipe, `hello.txt` and the build log.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "Singularity" && n != "hello.txt" && !n.ends_with(".build.log"))
        .collect();
    left.sort();
    left
}

/// Whether a process runs `argv` (zombies aside).
fn running(argv: &[&str]) -> bool {
    let mut wanted = Vec::new();
    for a in argv {
        wanted.extend_from_slice(a.as_bytes());
        wanted.push(0);
    }
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let alive = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        });
        alive && std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted)
    })
}

/// Waits up to 15 s for the processes of a cancelled job to go.
fn gone(argv: &[&str]) -> bool {
    (0..75).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        !running(argv)
    })
}

fn short_hostname() -> String {
    let out = Command::new("hostname").arg("-s").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn slurm_backend_builds_a_sound_sif_with_the_native_backend_on_the_node() {
    let cluster = Cluster::shared();
    let (dir, recipe) = recipe(
        "Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n\n%labels\n    Maintainer sreg-tests\n",
    );
    let out = dir.path().join("hello.sif");
    let result = sreg_build(
        &cluster,
        &[],
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "slurm",
            "--slurm-backend",
            "native",
        ],
    );
    assert!(
        result.status.success(),
        "{}\n{}",
        text(&result),
        cluster.logs()
    );

    let listing = Command::new("siftool")
        .arg("list")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("Squashfs/*System"),
        "{}",
        text(&listing)
    );
    let rec = record(&out);
    let log = std::fs::read_to_string(dir.path().join("hello.build.log")).unwrap();
    let id = job_id(&log);
    assert_eq!(rec["backend"], "slurm");
    assert_eq!(rec["backend_version"], "22.05.8", "{rec:#}");
    let details = &rec["backend_details"];
    assert_eq!(details["job_id"], id.as_str());
    assert_eq!(details["partition"], sreg_tests::slurm::PARTITION);
    assert_eq!(details["node"], short_hostname().as_str());
    assert_eq!(details["inner_backend"], "native");
    // The job's own output is in the build log: the batch script's first
    // line and the inner build's.
    assert!(log.contains(&format!("sreg: Slurm job {id} on ")), "{log}");
    assert!(log.contains("with the native backend"), "{log}");
    assert!(log.contains(&format!("slurm: job {id} COMPLETED")), "{log}");
    assert_eq!(cluster.job(&id).unwrap()["JobState"], "COMPLETED");
    assert_eq!(leftovers(dir.path()), ["hello.build.json", "hello.sif"]);
}

#[test]
fn slurm_backend_runs_stand_in_apptainer_on_the_node_with_the_build_args() {
    let cluster = Cluster::shared();
    let stand_in = StandIn::new("apptainer", Behaviour::Build);
    let (dir, recipe) = recipe(
        "Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n\n%labels\n    Version {{ VERSION }}\n",
    );
    let out = dir.path().join("img.sif");
    // The job runs sreg through SREG_SLURM_SREG, here a wrapper that says so.
    let wrapper = dir.path().join("sreg-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho 'sreg wrapper on the node'\nexec {} \"$@\"\n",
            bin("sreg").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path_var = stand_in.path_var();
    let result = sreg_build(
        &cluster,
        &[
            ("PATH", &path_var),
            ("SREG_SLURM_SREG", wrapper.to_str().unwrap()),
        ],
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "slurm",
            "--slurm-backend",
            "apptainer",
            "--slurm-partition",
            sreg_tests::slurm::PARTITION,
            "--slurm-time",
            "10:00",
            "--slurm-arg=--cpus-per-task=1",
            "--build-arg",
            "VERSION=3.20",
            "--notest",
        ],
    );
    assert!(
        result.status.success(),
        "{}\n{}",
        text(&result),
        cluster.logs()
    );
    let log = std::fs::read_to_string(dir.path().join("img.build.log")).unwrap();
    assert!(
        log.contains(&format!("it runs {} build", wrapper.display())),
        "{log}"
    );
    assert!(log.contains("sreg wrapper on the node"), "{log}");
    // The job's sreg called apptainer with the build arguments and --notest.
    let argv = stand_in.argv();
    assert!(argv.contains(&"--notest".to_string()), "{argv:?}");
    let at = argv.iter().position(|a| a == "--build-arg").unwrap();
    assert_eq!(argv[at + 1], "VERSION=3.20");
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
    assert_eq!(rec["backend"], "slurm");
    assert_eq!(rec["backend_details"]["inner_backend"], "apptainer");
    assert_eq!(
        rec["backend_details"]["inner_backend_version"],
        "1.9.9-stand-in"
    );
    let id = rec["backend_details"]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = cluster.job(&id).unwrap();
    assert_eq!(job["JobName"], "sreg-build-img");
    assert_eq!(job["TimeLimit"], "00:10:00");
    assert_eq!(
        leftovers(dir.path()),
        ["img.build.json", "img.sif", "sreg-wrapper"]
    );
}

#[test]
fn failing_recipe_fails_the_slurm_job_and_leaves_no_image() {
    let cluster = Cluster::shared();
    let (dir, recipe) = recipe(&format!(
        "Bootstrap: scratch\n\n{BUSYBOX_SETUP}\n%post\n    echo about to fail\n    exit 3\n"
    ));
    let out = dir.path().join("bad.sif");
    let result = sreg_build(
        &cluster,
        &[],
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "slurm",
            "--slurm-backend",
            "native",
            "--quiet",
        ],
    );
    assert!(!result.status.success(), "{}", text(&result));
    let stderr = String::from_utf8_lossy(&result.stderr);
    let error = stderr.lines().last().unwrap();
    assert!(error.contains("ended FAILED"), "{stderr}");
    // The inner build's reason, without its own (removed) log's path.
    assert!(error.contains("exit code 3"), "{stderr}");
    assert!(!error.contains("image.build.log"), "{stderr}");
    assert!(stderr.contains("bad.build.log"), "{stderr}");
    let log = std::fs::read_to_string(dir.path().join("bad.build.log")).unwrap();
    assert!(log.contains("about to fail"), "{log}");
    let id = job_id(&log);
    assert!(log.contains(&format!("slurm: job {id} FAILED")), "{log}");
    assert_eq!(cluster.job(&id).unwrap()["JobState"], "FAILED");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn timeout_cancels_the_slurm_job_and_leaves_nothing() {
    let cluster = Cluster::shared();
    let (dir, recipe) = recipe(&format!(
        "Bootstrap: scratch\n\n{BUSYBOX_SETUP}\n%post\n    echo sleeping\n    sleep 59\n"
    ));
    let out = dir.path().join("slow.sif");
    let started = Instant::now();
    let result = sreg_build(
        &cluster,
        &[],
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "slurm",
            "--slurm-backend",
            "native",
            "--timeout",
            "3s",
        ],
    );
    let took = started.elapsed();
    assert!(!result.status.success(), "{}", text(&result));
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("--timeout 3s"),
        "{}",
        text(&result)
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let log = std::fs::read_to_string(dir.path().join("slow.build.log")).unwrap();
    let id = job_id(&log);
    assert!(
        log.contains(&format!("slurm: cancelling job {id}")),
        "{log}"
    );
    assert!(!cluster.queued().contains(&id), "job {id} is still queued");
    assert_eq!(cluster.job(&id).unwrap()["JobState"], "CANCELLED");
    assert!(
        gone(&["sleep", "59"]),
        "the job's sleep outlived its cancel"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn a_partition_slurm_does_not_have_is_refused_with_sbatchs_reason() {
    let cluster = Cluster::shared();
    let (dir, recipe) = recipe("Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n");
    let out = dir.path().join("x.sif");
    let result = sreg_build(
        &cluster,
        &[],
        &[
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--backend",
            "slurm",
            "--slurm-partition",
            "nosuchpartition",
        ],
    );
    assert!(!result.status.success(), "{}", text(&result));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("sbatch refused the job"), "{stderr}");
    assert!(stderr.contains("invalid partition"), "{stderr}");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn missing_sbatch_is_an_error_naming_slurm_client() {
    let (dir, recipe) = recipe("Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n");
    let out = dir.path().join("x.sif");
    let result = Command::new(bin("sreg"))
        .args([
            "build",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--backend", "slurm"])
        .env("PATH", dir.path().join("no-such-bin"))
        .output()
        .unwrap();
    assert!(!result.status.success(), "{}", text(&result));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("sbatch is not installed"), "{stderr}");
    assert!(stderr.contains("slurm-client"), "{stderr}");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn ctrl_c_cancels_the_slurm_job_and_leaves_nothing() {
    let cluster = Cluster::shared();
    let (dir, recipe) = recipe(&format!(
        "Bootstrap: scratch\n\n{BUSYBOX_SETUP}\n%post\n    sleep 58\n"
    ));
    let out = dir.path().join("int.sif");
    let mut sreg = Command::new(bin("sreg"))
        .args([
            "build",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--backend", "slurm", "--slurm-backend", "native", "--quiet"])
        .env("SLURM_CONF", cluster.conf())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log_path = dir.path().join("int.build.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The job's %post runs on the node (this machine).
    while !running(&["sleep", "58"]) {
        assert!(
            Instant::now() < deadline,
            "the job did not start\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What a terminal sends on Ctrl-C.
    let kill = Command::new("kill")
        .args(["-INT", &sreg.id().to_string()])
        .status();
    assert!(kill.unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while sreg.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "sreg did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let result = sreg.wait_with_output().unwrap();
    assert!(!result.status.success());
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("interrupted"),
        "{}",
        text(&result)
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    let id = job_id(&log);
    assert!(
        log.contains(&format!("slurm: cancelling job {id}")),
        "{log}"
    );
    assert!(!cluster.queued().contains(&id), "job {id} is still queued");
    assert_eq!(cluster.job(&id).unwrap()["JobState"], "CANCELLED");
    assert!(
        gone(&["sleep", "58"]),
        "the job's sleep outlived its cancel"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}
