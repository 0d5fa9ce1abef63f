use std::process::ExitCode;

fn main() -> ExitCode {
    enclave::main(std::env::args_os())
}
