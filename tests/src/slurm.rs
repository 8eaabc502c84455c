//! A real single-node Slurm cluster for tests: Debian's `slurmctld` and
//! `slurmd` (slurm-wlm) with a private `munged`, all configured, run and
//! logged inside one temporary folder, and stopped when dropped.
//!
//! Every Slurm command must see the cluster's configuration: run them
//! through [`Cluster::command`], or set `SLURM_CONF` to [`Cluster::conf`].
//!
//! A node is named after the machine's short hostname, so only one such
//! cluster can run on a machine at a time: [`Cluster::start`] waits for a
//! machine-wide lock (an abstract socket), and [`Cluster::shared`] shares one cluster between the
//! tests of a test binary (it stops when the last of them lets it go).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::free_port;

/// An abstract Unix socket bound while a test cluster runs on this
/// machine: the kernel releases it when its process ends, however it ends.
const LOCK_NAME: &[u8] = b"sreg-test-slurm-cluster";

/// The folder and daemon pids of the last cluster, so daemons left by a
/// killed test run are stopped.
const PIDS_FILE: &str = "/tmp/sreg-test-slurm.pids";

/// The partition every job goes to.
pub const PARTITION: &str = "debug";

pub struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// munged, slurmctld, slurmd: stopped in the reverse order.
    daemons: Vec<(&'static str, Child)>,
    /// Released last, when the daemons are gone.
    _lock: UnixListener,
}

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

impl Cluster {
    /// The cluster the tests of this binary share, started on first use.
    pub fn shared() -> Arc<Cluster> {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Cluster::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    /// Starts munged, slurmctld and slurmd, and waits until the node is idle.
    pub fn start() -> Cluster {
        let lock = machine_lock();
        stop_leftovers(PIDS_FILE);

        let dir = tempfile::Builder::new()
            .prefix("sreg-slurm")
            .tempdir()
            .expect("tempdir");
        // munged insists that every folder above its socket be searchable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let d = &dir.path().to_path_buf();
        let mut cluster = Cluster {
            conf: d.join("slurm.conf"),
            daemons: Vec::new(),
            _lock: lock,
            dir,
        };

        let key = d.join("munge.key");
        run(Command::new("mungekey")
            .arg("--create")
            .arg("--keyfile")
            .arg(&key));
        let socket = d.join("munge.socket");
        let mut munged = Command::new("munged");
        munged
            .arg("--foreground")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--log-file={}", d.join("log/munged.log").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()));
        cluster.spawn("munged", munged);
        cluster.wait_for("munged to answer", |_| {
            Command::new("munge")
                .arg("--socket")
                .arg(&socket)
                .arg("--no-input")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });

        let host = short_hostname();
        std::fs::write(&cluster.conf, slurm_conf(d, &host, &socket)).unwrap();
        let mut ctld = Command::new("slurmctld");
        ctld.arg("-D").arg("-f").arg(&cluster.conf);
        cluster.spawn("slurmctld", ctld);
        let mut slurmd = Command::new("slurmd");
        slurmd
            .arg("-D")
            .arg("-f")
            .arg(&cluster.conf)
            .arg("-N")
            .arg(&host);
        cluster.spawn("slurmd", slurmd);
        cluster.remember_daemons();
        cluster.wait_for("the node to be idle", |cluster| {
            cluster
                .command("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    /// `SLURM_CONF` for this cluster.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// A Slurm command (`sbatch`, `squeue`...) that talks to this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// The fields of `scontrol show job -o ID`, or `None` once Slurm has
    /// forgotten the job.
    pub fn job(&self, id: &str) -> Option<BTreeMap<String, String>> {
        let out = self
            .command("scontrol")
            .args(["show", "job", "-o", id])
            .output()
            .expect("scontrol");
        if !out.status.success() {
            return None;
        }
        Some(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Ids of the jobs `squeue` lists (pending, running, completing).
    pub fn queued(&self) -> Vec<String> {
        let out = self
            .command("squeue")
            .args(["-h", "-o", "%i"])
            .output()
            .expect("squeue");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// The daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["slurmctld", "slurmd", "munged"] {
            let log = std::fs::read_to_string(self.dir.path().join(format!("log/{name}.out")))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            text.push_str(&format!("--- {name} ---\n{tail}\n"));
        }
        text
    }

    fn spawn(&mut self, name: &'static str, mut cmd: Command) {
        let out = File::create(self.dir.path().join(format!("log/{name}.out"))).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .env("SLURM_CONF", &self.conf);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {name} (apt-get install slurm-wlm munge): {e}")
        });
        self.daemons.push((name, child));
    }

    /// Polls `ready` for up to 30 s; panics with the logs when it stays false
    /// or a daemon dies.
    fn wait_for(&mut self, what: &str, ready: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(self) {
            let dead = self
                .daemons
                .iter_mut()
                .find_map(|(name, child)| Some((*name, child.try_wait().ok()??)));
            if let Some((name, status)) = dead {
                panic!(
                    "{name} exited ({status}) while waiting for {what}\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes the folder and daemon pids into [`PIDS_FILE`].
    fn remember_daemons(&self) {
        let mut text = format!("{}\n", self.dir.path().display());
        for (_, child) in &self.daemons {
            text.push_str(&format!("{}\n", child.id()));
        }
        if let Ok(mut f) = File::create(PIDS_FILE) {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Jobs first: their slurmstepd would outlive slurmd.
        let ids = self.queued();
        if !ids.is_empty() {
            let _ = self.command("scancel").args(&ids).status();
            let deadline = Instant::now() + Duration::from_secs(40);
            while !self.queued().is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        while let Some((_, mut child)) = self.daemons.pop() {
            stop(&mut child);
        }
        if let Ok(f) = File::create(PIDS_FILE) {
            drop(f); // emptied: nothing left to stop
        }
    }
}

/// SIGTERM, then SIGKILL after 10 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits (up to 10 minutes) until no other test cluster runs on the machine.
fn machine_lock() -> UnixListener {
    let addr = SocketAddr::from_abstract_name(LOCK_NAME).expect("abstract socket name");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot take the test cluster lock: {e}"),
        }
    }
}

/// Stops the daemons a killed test run left (named in `pids_file`, and
/// still running with that run's folder on their command line).
fn stop_leftovers(pids_file: &str) {
    let text = std::fs::read_to_string(pids_file).unwrap_or_default();
    let mut lines = text.lines();
    let Some(dir) = lines.next().filter(|d| d.contains("sreg-slurm")) else {
        return;
    };
    for pid in lines {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(dir) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

fn short_hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname -s");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!name.is_empty(), "hostname -s printed nothing");
    name
}

/// CPUs of this machine as slurmd counts them (`slurmd -C`), so the node
/// is not drained for having fewer than configured.
fn node_cpus() -> u32 {
    let out = Command::new("slurmd")
        .arg("-C")
        .output()
        .expect("slurmd -C");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|f| f.strip_prefix("CPUs="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// A one-node cluster as in test-components.md §5, everything inside `d`,
/// on free ports, authenticated by the private munged at `socket`.
fn slurm_conf(d: &Path, host: &str, socket: &Path) -> String {
    let d = d.display();
    format!(
        "ClusterName=sregtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/log/jobcomp.txt
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
",
        ctld_port = free_port(),
        slurmd_port = free_port(),
        socket = socket.display(),
        cpus = node_cpus(),
    )
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (apt-get install slurm-wlm munge): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_job_runs_on_the_test_cluster() {
        let cluster = Cluster::start();
        let out_dir = tempfile::tempdir().unwrap();
        let out = cluster
            .command("sbatch")
            .arg("--parsable")
            .arg("--output")
            .arg(out_dir.path().join("%j.out"))
            .args(["--wrap", "echo hi from job $SLURM_JOB_ID; exit 3"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.logs()
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = cluster.job(&id).expect("the job is known");
            if job["JobState"] == "FAILED" {
                assert_eq!(job["ExitCode"], "3:0");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {id}: {job:?}\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let printed = std::fs::read_to_string(out_dir.path().join(format!("{id}.out"))).unwrap();
        assert_eq!(printed.trim(), format!("hi from job {id}"));
    }
}
