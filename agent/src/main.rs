fn main() {
    std::process::exit(enclave_agent::server::main());
}
