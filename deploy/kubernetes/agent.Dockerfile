# An agent image for `--agent-image` (docs/kubernetes.md): nothing but the static agent binary,
# which its init container runs as `/enclave-agent install DEST`. Build enclave first; build.rs
# leaves the agent at target/agent/<target triple>/agent/enclave-agent:
#   cargo build --release
#   cp target/agent/x86_64-unknown-linux-gnu/agent/enclave-agent deploy/kubernetes/
#   docker build -f deploy/kubernetes/agent.Dockerfile -t registry.example/enclave-agent:1 deploy/kubernetes
# Build it once per enclave release: the agent and enclave speak the same protocol version.
FROM scratch
COPY enclave-agent /enclave-agent
ENTRYPOINT ["/enclave-agent"]
