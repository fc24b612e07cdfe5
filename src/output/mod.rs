//! Everything that reaches the terminal goes through here.
//!
//! stdout carries only data (the edited TOML, `show`'s TOML, or the one JSON document);
//! status, diffs, prompts and progress go to stderr, so `interlockctl ... > new.toml` and
//! `-o json | jq` always get clean input.

pub mod printer;
pub mod progress;
pub mod report;
