#!/usr/bin/env bash
# Makes sure the test notebook image exists: Jupyter Kernel Gateway, ipykernel and matplotlib
# over the local test image, built without a registry (docs/notebook.md).
#
# - An image that is already there is reused.
# - The wheels are downloaded here, on the host (which reaches PyPI), for the base image's
#   Python (3.11, manylinux x86_64), and installed in a `docker build` from them alone: the
#   build needs no network and no pip in the base image (pip runs from its own wheel).
#
# Prints `ENCLAVE_TEST_NOTEBOOK_IMAGE=<name>` on stdout.
set -euo pipefail

log() { printf '[ensure-notebook-image] %s\n' "$*" >&2; }
die() { printf '[ensure-notebook-image] error: %s\n' "$*" >&2; exit 1; }

IMAGE=${ENCLAVE_TEST_NOTEBOOK_IMAGE:-enclave-test-notebook:1}
BASE=${ENCLAVE_TEST_IMAGE:-enclave-test-python:bookworm}
PY_VERSION=${ENCLAVE_NOTEBOOK_PY_VERSION:-3.11}
# What the notebook tests need, pinned (with the pieces the gateway's behaviour rests on: tornado,
# jupyter_server, pyzmq) so a new release cannot change a CI run; pip itself so the image can
# install more. Changing a pin changes the image: bump the tag above's default.
PACKAGES=(pip==26.3 jupyter_kernel_gateway==3.0.1 jupyter_client==8.10.0 jupyter_server==2.21.1
  ipykernel==7.4.0 ipython==9.18.1 tornado==6.6.1 pyzmq==27.3.0 matplotlib==3.11.2
  matplotlib-inline==0.2.2 numpy==2.4.6 pillow==13.0.0)

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "reusing image $IMAGE"
  echo "ENCLAVE_TEST_NOTEBOOK_IMAGE=$IMAGE"
  exit 0
fi
docker image inspect "$BASE" >/dev/null 2>&1 || die "the base image $BASE is missing (run scripts/ensure-docker.sh)"

pip_cmd() {
  if ! command -v pip3 >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1 \
     && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing python3-pip to download the notebook wheels"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >&2
  fi
  if command -v pip3 >/dev/null 2>&1; then pip3 "$@";
  elif python3 -m pip --version >/dev/null 2>&1; then python3 -m pip "$@";
  else die "pip is needed on this host to download the notebook wheels (apt-get install python3-pip)"; fi
}

dir=$(mktemp -d /var/tmp/enclave-notebook.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/wheels"
abi="cp${PY_VERSION/./}"
log "downloading wheels for $abi (${PACKAGES[*]})"
pip_cmd download --quiet --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp --abi "$abi" --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$dir/wheels" "${PACKAGES[@]}" >&2 || die "pip download failed"

cat >"$dir/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY wheels /wheels
RUN set -e; pipwhl=\$(ls /wheels/pip-*.whl); \\
    python3 "\$pipwhl/pip" install --quiet --no-index --find-links /wheels --break-system-packages \\
      ${PACKAGES[*]} \\
 && python3 -m ipykernel install --name python3 --display-name "Python 3" \\
 && rm -rf /wheels && mkdir -p /sandbox
ENV MPLBACKEND=module://matplotlib_inline.backend_inline
WORKDIR /sandbox
EXPOSE 8888
CMD ["jupyter", "kernelgateway", "--KernelGatewayApp.ip=0.0.0.0", "--KernelGatewayApp.port=8888"]
DOCKERFILE

log "building $IMAGE from $BASE"
docker build --network none -q -t "$IMAGE" "$dir" >&2 || die "docker build of $IMAGE failed"
echo "ENCLAVE_TEST_NOTEBOOK_IMAGE=$IMAGE"
