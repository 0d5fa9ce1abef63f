# Sourced by the test scripts: `make_venv DIR` makes a fresh Python venv at DIR. Debian keeps
# venv in its own package, which is installed when missing and we are root.
make_venv() {
  local dir=$1
  rm -rf "$dir"
  if python3 -m venv "$dir" 2>/dev/null; then
    return
  fi
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$dir"
    python3 -m venv "$dir"
  else
    echo "python3 cannot make a venv: install python3-venv" >&2
    exit 1
  fi
}
