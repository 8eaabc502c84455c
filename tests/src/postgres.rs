//! A throwaway PostgreSQL server (initdb + pg_ctl from Debian's
//! `postgresql`), private to one test and removed afterwards.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::free_port;

pub struct Postgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// `postgres://sreg@127.0.0.1:PORT/sreg`
    pub url: String,
}

impl Postgres {
    pub fn start() -> Self {
        let bindir = find_bindir();
        let dir = tempfile::Builder::new()
            .prefix("sreg-pg")
            .tempdir()
            .expect("tempdir");
        // PostgreSQL refuses to run as root: as root, hand the folder to `postgres`.
        let as_root = is_root();
        if as_root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        let port = free_port();
        let pg = |tool: &str| {
            let mut c = if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bindir.join(tool));
                c
            } else {
                Command::new(bindir.join(tool))
            };
            c.current_dir(dir.path());
            c
        };
        run(pg("initdb").args(["-D"]).arg(&data).args([
            "-U",
            "sreg",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        let opts = format!("-h 127.0.0.1 -p {port} -k {} -F", dir.path().display());
        run(pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(dir.path().join("log"))
            .args(["-w", "start"]));
        run(pg("createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "sreg",
            "sreg",
        ]));
        Self {
            url: format!("postgres://sreg@127.0.0.1:{port}/sreg"),
            dir,
            bindir,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bindir.join("pg_ctl"));
            c
        } else {
            Command::new(self.bindir.join("pg_ctl"))
        };
        let _ = c
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn find_bindir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL server binaries not found under /usr/lib/postgresql: run scripts/setup")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
