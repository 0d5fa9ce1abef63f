#!/usr/bin/env bash
# The Pod manifests of the kubernetes backend, validated offline against the API's own schemas:
# `enclave create --backend kubernetes --dry-run` for a few configs, each object checked by
# `kubernetes-validate --strict` (PyPI; unknown fields are errors) at Kubernetes 1.33 and 1.37.
# No cluster is needed. The venv is kept in target/k8s-venv and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/make-venv.sh

# Pinned: the newest release on PyPI on 2026-11-30; it carries the schemas of 1.12 to 1.37.
pin=kubernetes-validate==1.37.0
venv=target/k8s-venv
if [[ $(cat "$venv/.stamp" 2>/dev/null) != "$pin" ]]; then
  echo "==> making $venv with $pin" >&2
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin"
  printf '%s\n' "$pin" > "$venv/.stamp"
fi

cargo build --locked --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ENCLAVE_STATE_DIR=$work/state

configs=(
  "defaults|"
  "no network, limits, runtime, labels, env, command|--no-network --memory 512m --cpus 1.5 --runtime gvisor --label team=ml --label example.com/run=r1 -e MODE=test --workdir /work --tool python_executor --tool shell_executor"
  "unlimited memory, another namespace|--memory 0 --namespace sandboxes"
  "the agent from an agent image (an init container)|--agent-image registry.example/enclave-agent:1 --cpus 1"
)
checked=0
for entry in "${configs[@]}"; do
  name=${entry%%|*}
  read -r -a flags <<< "${entry#*|}"
  dir=$work/$checked
  mkdir -p "$dir"
  ./target/debug/enclave create --backend kubernetes --dry-run "${flags[@]}" > "$dir/list.json"
  # One file per object: the validator takes kinds, not Lists.
  "$venv/bin/python" - "$dir" <<'PY'
import json, pathlib, sys
dir = pathlib.Path(sys.argv[1])
for i, item in enumerate(json.loads((dir / "list.json").read_text())["items"]):
    (dir / f"{i}-{item['kind']}.json").write_text(json.dumps(item))
PY
  for version in 1.33.0 1.37.0; do
    for object in "$dir"/[0-9]-*.json; do
      if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$object"; then
        echo "FAIL: $name: $(basename "$object") at Kubernetes $version" >&2
        cat "$object" >&2
        exit 1
      fi
    done
  done
  echo "   $name: $(ls "$dir"/[0-9]-*.json | xargs -n1 basename | sed 's/^[0-9]-//; s/.json$//' | tr '\n' ' ')valid at 1.33 and 1.37" >&2
  checked=$((checked + 1))
done
echo "==> $checked kubernetes dry-run manifests valid (kubernetes-validate --strict, 1.33.0 and 1.37.0)" >&2

# The RBAC and server examples of docs/kubernetes.md, checked the same way.
for file in deploy/kubernetes/*.yaml; do
  for version in 1.33.0 1.37.0; do
    if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$file"; then
      echo "FAIL: $file at Kubernetes $version" >&2
      exit 1
    fi
  done
done
echo "==> $(ls deploy/kubernetes/*.yaml | wc -l) deploy/kubernetes examples valid at 1.33.0 and 1.37.0" >&2
