//! The pieces of `sreg agent` and `sreg watch`: git checkouts and the
//! `sreg build` / `sreg push` child processes.

pub mod child;
pub mod git;
