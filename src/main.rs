//! Entry point: everything lives in the library so tests can reach it.

fn main() {
    let code = interlockctl::main_with_args(std::env::args_os());
    std::process::exit(code.code());
}
