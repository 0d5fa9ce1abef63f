#!/usr/bin/env bash
# ms-enclave's own Python client against `enclave server`: makes a venv with ms-enclave 0.0.8 from
# PyPI (kept in target/pyvenv and reused), starts the server on a free loopback port with an API
# key, runs tests/python with pytest, stops the server, and checks that nothing was left behind.
# Needs the Docker engine and test image that scripts/ensure-docker.sh provides.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/make-venv.sh

venv=target/pyvenv
image=${ENCLAVE_TEST_IMAGE:-enclave-test-python:bookworm}
notebook_image=${ENCLAVE_TEST_NOTEBOOK_IMAGE:-enclave-test-notebook:1}
if [[ ! -x $venv/bin/pytest ]] || ! "$venv/bin/python" -c 'import ms_enclave' 2>/dev/null; then
  echo "==> making $venv with ms-enclave 0.0.8 and pytest" >&2
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'ms-enclave[docker]==0.0.8' 'pytest>=8'
fi

cargo build --locked --quiet
work=$(mktemp -d)
label=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$key" > "$work/key"
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  docker ps -aq --filter "label=enclave-test=$label" | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ENCLAVE_STATE_DIR="$work/state" target/debug/enclave server --port 0 \
  --state-dir "$work/server" --api-key-file "$work/key" --cleanup-on-exit \
  2> "$work/server.log" &
server_pid=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -1)
  [[ -n $url ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $url ]] || { echo "the server did not say where it listens" >&2; cat "$work/server.log" >&2; exit 1; }
echo "==> ms-enclave's HttpSandboxManager against enclave server at $url" >&2

status=0
ENCLAVE_URL=$url ENCLAVE_API_KEY=$key ENCLAVE_TEST_IMAGE=$image ENCLAVE_TEST_LABEL=$label \
  ENCLAVE_TEST_NOTEBOOK_IMAGE=$notebook_image \
  "$venv/bin/pytest" -q -p no:cacheprovider tests/python || status=$?

kill -TERM "$server_pid"
wait "$server_pid" || { echo "the server exited with $? on SIGTERM" >&2; status=1; }
server_pid=
if [[ $status -ne 0 ]]; then
  echo "--- server log ---" >&2
  tail -n 50 "$work/server.log" >&2
fi
left=$(docker ps -aq --filter "label=enclave-test=$label" | wc -l)
if [[ $left -ne 0 ]]; then
  echo "$left container(s) left behind after --cleanup-on-exit" >&2
  status=1
fi
exit $status
