//! The `databrain` command line, one module per family of commands; `main` only parses and
//! dispatches.

pub mod args;
pub mod data;
pub mod feed;
pub mod serve;
pub mod tasks;
pub mod twin;
