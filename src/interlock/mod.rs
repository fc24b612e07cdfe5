//! Interlock domain knowledge: its config file and the input that edits it. No I/O here.

pub mod cluster;
pub mod config;
pub mod edit;
pub mod findings;
pub mod image;
pub mod input;
pub mod labels;
pub mod rejection;
pub mod secrets;
