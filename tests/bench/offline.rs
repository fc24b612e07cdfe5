//! Offline figures: how long the binary takes to start, against the floor of starting any
//! process (`true`), alternating the two so both see the same machine load.

use std::process::Command;

use crate::measure::{Samples, ratio};

const ROUNDS: usize = 30;

fn run_quietly(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .output()
        .expect("the program starts")
        .status;
    assert!(status.success(), "{program} {args:?} failed");
}

pub fn run() {
    let binary = env!("CARGO_BIN_EXE_interlockctl");
    let (mut tool, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        tool.push(Samples::collect(1, || run_quietly(binary, &["--version"])));
        floor.push(Samples::collect(1, || run_quietly("true", &[])));
    }
    let tool = Samples::merge(tool);
    let floor = Samples::merge(floor);
    println!("start-up  interlockctl --version: {}", tool.summary());
    println!("          true (process floor):   {}", floor.summary());
    println!("          ratio: {:.2}x the floor", ratio(&tool, &floor));
}
