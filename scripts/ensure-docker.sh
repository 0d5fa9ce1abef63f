#!/usr/bin/env bash
# Makes sure a Docker engine answers and the test images exist, on a bare machine or a developer's.
#
# - An engine that already answers (DOCKER_HOST or the default socket) is used as it is.
# - On a Debian machine where we are root and no engine runs, installs docker.io and starts dockerd.
# - Test images are reused when present, pulled when a registry answers, and otherwise built
#   locally with debootstrap + `docker import` (no registry needed).
#
# - The notebook test image (Jupyter Kernel Gateway over the test image) is built by
#   scripts/ensure-notebook-image.sh.
#
# Prints the names of the images it prepared as `ENCLAVE_TEST_IMAGE=...` and
# `ENCLAVE_TEST_NOTEBOOK_IMAGE=...` lines on stdout.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
die() { printf '[ensure-docker] error: %s\n' "$*" >&2; exit 1; }

TEST_IMAGE=${ENCLAVE_TEST_IMAGE:-enclave-test-python:bookworm}
SUITE=bookworm
# python3 + procps for the sandbox tests; g++ so multi_code_executor can compile something.
PACKAGES=python3,python-is-python3,procps,g++,ca-certificates

engine_answers() { docker info >/dev/null 2>&1; }

debian_mirror() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | grep -i debian | head -n1 | awk '{print ($1=="deb") ? $2 : $2}' || true)
  [ -n "$uri" ] && [ "${uri#\[}" = "$uri" ] || uri=http://deb.debian.org/debian
  echo "$uri"
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

start_engine() {
  if engine_answers; then return; fi
  if ! can_install; then
    die "no Docker engine answers. Start one (e.g. \`sudo systemctl start docker\`) or set DOCKER_HOST, then re-run."
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io iptables
  fi
  log "starting dockerd (log: /var/log/enclave-dockerd.log)"
  nohup dockerd >/var/log/enclave-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    if engine_answers; then log "engine ready"; return; fi
    sleep 1
  done
  tail -n 30 /var/log/enclave-dockerd.log >&2 || true
  die "dockerd did not answer within 60 s"
}

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

build_image_with_debootstrap() {
  local name=$1 dir
  can_install || die "cannot build $name: needs root with apt-get (or a registry to pull python:3.11 from)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  dir=$(mktemp -d /var/tmp/enclave-rootfs.XXXXXX)
  log "building $name with debootstrap ($SUITE, $PACKAGES) in $dir"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" "$(debian_mirror)" >&2 \
    || { rm -rf "$dir"; die "debootstrap failed"; }
  # Containers reach package indexes only when they trust the host's CA bundle.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  fi
  rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
  tar -C "$dir" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$name" >&2
  rm -rf "$dir"
}

ensure_test_image() {
  local name=$1
  if image_present "$name"; then log "reusing image $name"; return; fi
  # python:3.11 (not -slim) carries gcc/g++ as well as python3.
  if timeout 120 docker pull -q python:3.11 >/dev/null 2>&1; then
    docker tag python:3.11 "$name"
    log "pulled python:3.11 as $name"
    return
  fi
  build_image_with_debootstrap "$name"
}

start_engine
ensure_test_image "$TEST_IMAGE"
echo "ENCLAVE_TEST_IMAGE=$TEST_IMAGE"
ENCLAVE_TEST_IMAGE=$TEST_IMAGE "$(dirname "$0")/ensure-notebook-image.sh"
