//! Where things are: the workspace, its binaries, a free port.

use std::path::{Path, PathBuf};

/// Root of the workspace (for `.venv`, fixtures).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Path of a binary built from this workspace (`sreg`, `sreg-server`).
///
/// Integration tests live in `target/<profile>/deps/`; the binaries one level
/// up. `scripts/test` builds them before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test does this)",
        path.display()
    );
    path
}

/// A TCP port that was free a moment ago on 127.0.0.1, for servers that
/// cannot be told to pick their own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
