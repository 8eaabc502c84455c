//! `sreg agent` end to end: a real sreg-server queues jobs of a build
//! project whose repository a real `git daemon` serves; real agents lease,
//! clone, build (native backend), push and finish them. Faults: a failing
//! recipe, a registry restart while the agent idles, SIGTERM during a
//! build, an agent killed mid-build, a cancel.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sreg_api::Reference;
use sreg_api::builds::{BuildJob, JobState};
use sreg_api::client::Client;
use sreg_tests::git_server::{GitServer, WorkRepo};
use sreg_tests::{Server, bin, free_port};

/// A recipe from scratch with one file; `setup` runs on the host first
/// (`sleep N` makes a build that lasts).
fn recipe(file: &str, setup: Option<&str>) -> String {
    let setup = setup.map_or(String::new(), |s| format!("%setup\n    {s}\n\n"));
    format!("Bootstrap: scratch\n\n{setup}%files\n    {file} /{file}\n")
}

/// A served repository with recipes `ok1`, `ok2` (good), `bad` (its file is
/// missing) and `slow` (sleeps 4 s in %setup).
fn repository() -> (GitServer, String, String) {
    let git_server = GitServer::start();
    let url = git_server.create("lab");
    let work = WorkRepo::new(&url);
    for (name, setup, file) in [
        ("ok1", None, Some("hello")),
        ("ok2", None, Some("hello")),
        ("bad", None, None),
        ("slow", Some("sleep 4"), Some("hello")),
        ("slower", Some("sleep 6"), Some("hello")),
        ("slowest", Some("sleep 12"), Some("hello")),
    ] {
        work.write(&format!("{name}/Singularity"), &recipe("a.txt", setup));
        if let Some(text) = file {
            work.write(&format!("{name}/a.txt"), &format!("{text} {name}\n"));
        }
    }
    let commit = work.commit("recipes");
    work.push("main");
    (git_server, url, commit)
}

/// A TCP relay to the registry, so that an agent keeps one URL while the
/// registry restarts on a new port.
struct Relay {
    port: u16,
    target: Arc<Mutex<SocketAddr>>,
    stop: Arc<AtomicBool>,
    /// Open client connections, cut when the target changes.
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(url: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(Mutex::new(addr_of(url)));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (t, s, open) = (target.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if let Ok(c) = client.try_clone() {
                    open.lock().unwrap().push(c);
                }
                let to = *t.lock().unwrap();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(to) else {
                        return;
                    };
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let (mut c1, mut s1) = (client, server);
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c1, &mut s1);
                        let _ = s1.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        Self {
            port,
            target,
            stop,
            conns,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// New connections go to `url`; open ones are cut, as by a network fault.
    fn point_at(&self, url: &str) {
        *self.target.lock().unwrap() = addr_of(url);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// A running `sreg agent`, its stderr collected; killed on drop.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Agent {
    fn start(registry: &str, token: &str, root: &Path, name: &str, concurrency: u32) -> Self {
        let work = root.join(format!("work-{name}"));
        let mut child = Command::new(bin("sreg"))
            .args(["agent", "--registry", registry, "--backend", "native"])
            .args(["--poll", "200ms", "--name", name])
            .arg(format!("--concurrency={concurrency}"))
            .arg("--work-dir")
            .arg(&work)
            .current_dir(root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("SREG_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sreg agent");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn log(&mut self) -> String {
        self.seen.extend(self.lines.try_iter());
        self.seen.join("\n")
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the agent to exit; its status.
    fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    token: String,
    commit: String,
    _git_server: GitServer,
    rt: tokio::runtime::Runtime,
}

/// A registry with short leases, an admin, and a project `lab` building
/// into `root/tools` (created with `sreg project create`).
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let server = Server::start_with_env(
        &root,
        &["--data-dir", "data"],
        &[
            ("SREG_BUILD_LEASE_SECONDS", "3".into()),
            ("SREG_BUILD_HEARTBEAT_SECONDS", "1".into()),
            ("SREG_BUILD_REAPER_INTERVAL_SECONDS", "1".into()),
        ],
    );
    let token = server.user_with_token("root", true);
    let (git_server, url, commit) = repository();
    let out = Command::new(bin("sreg"))
        .args(["project", "create", "lab", "--repository", &url])
        .args(["--collection", "root/tools", "--backend", "native"])
        .current_dir(&root)
        .env("HOME", &root)
        .env("SREG_REGISTRY", &server.url)
        .env("SREG_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "sreg project create: {out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("webhook secret: "), "{shown}");
    assert!(shown.contains("/api/v1/hooks/"), "{shown}");
    Setup {
        _dir: dir,
        root,
        server,
        token,
        commit,
        _git_server: git_server,
        rt: tokio::runtime::Runtime::new().unwrap(),
    }
}

impl Setup {
    fn client(&self) -> Client {
        Client::new(&self.server.url, Some(self.token.clone())).unwrap()
    }

    /// Queues recipes (names of folders) at the commit; their job ids.
    fn queue(&self, names: &[&str]) -> Vec<i64> {
        let mut args = vec!["admin", "build", "queue", "--project", "lab"];
        args.extend(["--commit", &self.commit]);
        let specs: Vec<String> = names
            .iter()
            .map(|n| format!("{n}/Singularity:{n}:latest"))
            .collect();
        for s in &specs {
            args.extend(["--recipe", s]);
        }
        let out = self.server.admin(&args);
        assert!(out.status.success(), "admin build queue: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    }

    fn job(&self, id: i64) -> BuildJob {
        self.rt.block_on(self.client().build_job(id)).unwrap()
    }

    /// Waits until the job is in a final state (or `state`).
    fn wait_for(&self, id: i64, agent: &mut Agent, until: impl Fn(&BuildJob) -> bool) -> BuildJob {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.job(id);
            if until(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} stayed {:?}; agent said:\n{}",
                job.state,
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn image_count(&self, name: &str) -> usize {
        self.rt
            .block_on(self.client().container(&format!("root/tools/{name}")))
            .map(|c| c.images.len())
            .unwrap_or(0)
    }
}

fn done(j: &BuildJob) -> bool {
    j.state.is_final()
}

#[test]
fn agent_builds_pushes_and_reports_jobs_and_survives_a_registry_restart_and_sigterm() {
    let mut s = setup();
    let relay = Relay::start(&s.server.url);
    let mut agent = Agent::start(&relay.url(), &s.token, &s.root, "a1", 2);

    let ids = s.queue(&["ok1", "ok2", "bad"]);
    assert_eq!(ids.len(), 3);
    let jobs: Vec<BuildJob> = ids
        .iter()
        .map(|&id| s.wait_for(id, &mut agent, done))
        .collect();
    for j in &jobs[..2] {
        assert_eq!(j.state, JobState::Succeeded, "{j:?}\n{}", agent.log());
        assert_eq!(j.agent.as_deref(), Some("a1"));
        let name = j.recipe_path.split('/').next().unwrap();
        let r = Reference::parse(&format!("root/tools/{name}:latest")).unwrap();
        let image = s.rt.block_on(s.client().image(&r, None)).unwrap();
        assert_eq!(Some(&image.sha256), j.image_sha256.as_ref());
        let meta = image.build.expect("build metadata").metadata;
        assert_eq!(meta.commit.as_deref(), Some(s.commit.as_str()));
        assert_eq!(meta.branch.as_deref(), Some("main"));
        assert_eq!(meta.backend.as_deref(), Some("native"));
        assert_eq!(meta.recipe_path.as_deref(), Some(j.recipe_path.as_str()));
        assert_eq!(
            meta.extra.get("build_job").map(String::as_str),
            Some(j.id.to_string().as_str())
        );
        // The log was stored while streamed, and is complete.
        let log = s.rt.block_on(s.client().build_job_log(j.id, 0)).unwrap();
        let text = String::from_utf8_lossy(&log.bytes);
        assert!(log.complete, "{text}");
        assert!(text.contains("== sreg agent a1: job"), "{text}");
        assert!(text.contains("with the native backend"), "{text}");
        assert!(text.contains("pushing root/tools/"), "{text}");
    }
    let bad = &jobs[2];
    assert_eq!(bad.state, JobState::Failed, "{bad:?}");
    let error = bad.error.as_deref().unwrap_or("");
    assert!(
        error.contains("a.txt"),
        "the log's tail names the missing file: {error}"
    );
    assert_eq!(s.image_count("bad"), 0);
    let log = s.rt.block_on(s.client().build_job_log(bad.id, 0)).unwrap();
    assert!(String::from_utf8_lossy(&log.bytes).contains("the job failed"));
    // `sreg builds log` prints the same log.
    let out = Command::new(bin("sreg"))
        .args(["builds", "log", &bad.id.to_string(), "--follow"])
        .env("HOME", &s.root)
        .env("SREG_REGISTRY", &s.server.url)
        .env("SREG_TOKEN", &s.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, log.bytes);

    // The registry restarts while the agent idles; the agent carries on.
    s.server = s.server.restart();
    relay.point_at(&s.server.url);
    let after = s.queue(&["ok2"]);
    // ok2 at this commit is built already: queued again only if the
    // server allows it; either way, a fresh recipe shows the agent works.
    let fresh = if after.is_empty() {
        s.queue(&["slow"])
    } else {
        after
    };
    let job = s.wait_for(fresh[0], &mut agent, done);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}\n{}", agent.log());

    // SIGTERM during a build: the build finishes, then the agent exits 0.
    let id = s.queue(&["slower"])[0];
    s.wait_for(id, &mut agent, |j| {
        j.state == JobState::Running && j.log_size > 0
    });
    agent.signal("-TERM");
    let status = agent.wait(Duration::from_secs(120));
    let said = agent.log();
    assert!(status.success(), "{status:?}\n{said}");
    assert!(said.contains("stopping: no new jobs"), "{said}");
    let job = s.job(id);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}\n{said}");
    assert_eq!(s.image_count("slower"), 1);
    assert!(!said.contains(&s.token), "the token stays out of the log");
    // Job folders are removed.
    let left: Vec<_> = std::fs::read_dir(s.root.join("work-a1")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_agent_killed_mid_build_loses_its_lease_and_another_agent_builds_the_job_once() {
    let s = setup();
    let mut first = Agent::start(&s.server.url, &s.token, &s.root, "first", 1);
    let id = s.queue(&["slower"])[0];
    s.wait_for(id, &mut first, |j| {
        j.state == JobState::Running && j.log_size > 0
    });
    first.signal("-KILL");
    first.wait(Duration::from_secs(10));

    let mut second = Agent::start(&s.server.url, &s.token, &s.root, "second", 1);
    let job = s.wait_for(id, &mut second, done);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}\n{}", second.log());
    assert_eq!(job.agent.as_deref(), Some("second"));
    assert_eq!(job.attempts, 2);
    assert_eq!(s.image_count("slower"), 1, "exactly one image");

    // A cancel stops a running build; the job ends cancelled, no image.
    let id = s.queue(&["slow"])[0];
    s.wait_for(id, &mut second, |j| {
        j.state == JobState::Running && j.log_size > 0
    });
    let out = Command::new(bin("sreg"))
        .args(["builds", "cancel", &id.to_string()])
        .env("HOME", &s.root)
        .env("SREG_REGISTRY", &s.server.url)
        .env("SREG_TOKEN", &s.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let job = s.wait_for(id, &mut second, done);
    assert_eq!(job.state, JobState::Cancelled, "{job:?}\n{}", second.log());
    assert!(
        second.log().contains("cancel requested"),
        "{}",
        second.log()
    );
    assert_eq!(s.image_count("slow"), 0);

    // The same jobs through `sreg builds` and `sreg project`.
    let sreg = |args: &[&str]| {
        let out = Command::new(bin("sreg"))
            .args(args)
            .env("HOME", &s.root)
            .env("SREG_REGISTRY", &s.server.url)
            .env("SREG_TOKEN", &s.token)
            .output()
            .unwrap();
        assert!(out.status.success(), "sreg {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let listed: Vec<BuildJob> =
        serde_json::from_str(&sreg(&["builds", "--project", "lab", "--json"])).unwrap();
    let ids: Vec<i64> = listed.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&id));
    let cancelled = sreg(&["builds", "--state", "cancelled"]);
    assert_eq!(
        cancelled.lines().count(),
        2,
        "a header and one job: {cancelled}"
    );
    assert!(sreg(&["builds", "show", &id.to_string()]).contains("cancelled"));
    assert!(sreg(&["project", "list"]).contains("root/tools"));
    assert!(sreg(&["project", "show", "lab"]).contains("backend:     native"));
    sreg(&["project", "delete", "lab"]);
    assert!(!sreg(&["project", "list"]).contains("lab"));
}

#[test]
fn a_lease_lost_in_a_network_outage_stops_the_build_and_a_second_signal_cancels_builds() {
    let s = setup();
    let relay = Relay::start(&s.server.url);
    let mut agent = Agent::start(&relay.url(), &s.token, &s.root, "a1", 1);
    let id = s.queue(&["slowest"])[0];
    s.wait_for(id, &mut agent, |j| {
        j.state == JobState::Running && j.log_size > 0
    });
    // The agent cannot reach the registry for longer than the lease (3 s):
    // the registry gives the job back to the queue, the agent stops its
    // build and drops the job, then leases it again once it can.
    relay.point_at(&format!("http://127.0.0.1:{}", free_port()));
    std::thread::sleep(Duration::from_secs(6));
    relay.point_at(&s.server.url);
    let job = s.wait_for(id, &mut agent, done);
    let said = agent.log();
    assert!(said.contains("lease lost"), "{said}");
    assert_eq!(job.state, JobState::Succeeded, "{job:?}\n{said}");
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_eq!(s.image_count("slowest"), 1, "exactly one image");

    // Two signals: the running build is stopped and its job failed; the
    // agent still exits 0.
    let id = s.queue(&["slow"])[0];
    s.wait_for(id, &mut agent, |j| {
        j.state == JobState::Running && j.log_size > 0
    });
    agent.signal("-TERM");
    std::thread::sleep(Duration::from_millis(300));
    agent.signal("-INT");
    let status = agent.wait(Duration::from_secs(60));
    let said = agent.log();
    assert!(status.success(), "{status:?}\n{said}");
    assert!(said.contains("cancelling the running builds"), "{said}");
    let job = s.job(id);
    assert_eq!(job.state, JobState::Failed, "{job:?}\n{said}");
    assert_eq!(job.error.as_deref(), Some("the agent was stopped"));
    assert_eq!(s.image_count("slow"), 0);
}
