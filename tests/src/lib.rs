//! Helpers shared by the end-to-end tests in `tests/tests/`: the workspace's
//! binaries, and real servers started and stopped by the tests themselves.

mod bins;
pub mod postgres;
pub mod s3;
mod server;

pub use bins::{bin, free_port, workspace_root};
pub use server::Server;
