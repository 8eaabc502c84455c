//! The registry server as a library, so that tests can start it in-process.

pub mod admin;
pub mod admin_builds;
pub mod blobs;
pub mod builds_triggers;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod gc;
pub mod http;
pub mod logging;
pub mod model;
pub mod pages;
pub mod publish;
pub mod sealing;
pub mod serve;
pub mod storage;
