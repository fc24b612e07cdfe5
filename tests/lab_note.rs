//! The last test target of `cargo test`: cargo runs integration test targets in the order of
//! their names, and this one is named `zz-lab-note` (Cargo.toml). The end-to-end tests leave
//! the lab swarm running, so the next run starts fast; this says so at the end, with the
//! command that stops it. It says nothing when the lab is down.

mod lab_support;

fn main() {
    if let Some(socket) = lab_support::running_lab_socket() {
        println!(
            "note: the lab swarm of the end-to-end tests is still running (manager at {}), \
             kept for the next run; stop it with: sudo bash tests/lab/lab.sh down",
            socket.display()
        );
    }
}
