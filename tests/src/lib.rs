//! Helpers shared by the end-to-end tests in `tests/tests/`: the workspace's
//! binaries, real servers started and stopped by the tests themselves, and
//! real third-party clients ([`libclient`], [`sregistry_cli`]) with a request
//! recorder ([`capture`]) that pins what they send.

mod bins;
pub mod capture;
pub mod gha;
pub mod git_server;
pub mod images;
pub mod libclient;
pub mod oci_registry;
pub mod podman;
pub mod postgres;
pub mod rootfs;
pub mod s3;
mod server;
pub mod slurm;
pub mod sregistry_cli;

pub use bins::{bin, free_port, workspace_root};
pub use server::{POSTGRES_ENV, Server};
