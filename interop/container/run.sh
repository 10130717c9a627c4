#!/usr/bin/env bash
# Warren's Dockerfile as a team meets it: `docker build -t warren .`, then the image started by
# testcontainers' own RabbitMQ modules for Node and Python and by plain `docker run` (the
# stories are in container.test.js and test_testcontainers.py).
#
# Engine: the one at DOCKER_HOST (or /var/run/docker.sock) when it answers. Otherwise a private
# dockerd from Debian's docker.io, with its data root in ~/.cache/warren-docker or INTEROP_DOCKER_ROOT
# (not WARREN_*: the broker takes every WARREN_ variable as a setting; base images and
# build layers are kept between runs) and its sockets under a temp dir; it is stopped at the end.
# Base images: pulled when a registry answers. When none does (CI and this machine reach Debian's
# mirror but no container registry), the private engine gets the two images the Dockerfile names
# made from Debian's packages: debian:bookworm-slim by debootstrap, and rust:1-slim-bookworm as
# that plus gcc, libc6-dev and this machine's Rust toolchain and CA certificates (the same
# toolchain builds target/release, and cargo inside reaches crates.io as cargo outside does).
# Those two are made only inside the private engine, never in someone's own.
#
# Last line: N passed, N failed
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/interop/container"
IMAGE=warren-under-test
TMP=$(mktemp -d /tmp/warren-docker.XXXXXX)
DOCKERD_PID=
DATA_ROOT=${INTEROP_DOCKER_ROOT:-$HOME/.cache/warren-docker}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
fail() { echo "container: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
    as_root kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 150); do as_root kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    # dockerd leaves its data root and the default network namespace mounted
    grep -oE " ($TMP|$DATA_ROOT)[^ ]*" /proc/mounts | sort -r | while read -r m; do as_root umount -l "$m"; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null ||
    (as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >/dev/null 2>&1 ||
    fail "no Docker engine, and Debian's docker.io could not be installed"
  mkdir -p "$DATA_ROOT"
  # one engine per data root: a second would corrupt the first's state
  pgrep -f "dockerd --data-root $DATA_ROOT " >/dev/null && fail "a dockerd already runs on $DATA_ROOT"
  export DOCKER_HOST="unix://$TMP/docker.sock"
  # No iptables rules and no NAT: published ports go through docker-proxy on loopback, and
  # builds use the host's network.
  as_root dockerd --data-root "$DATA_ROOT" --exec-root "$TMP/exec" --pidfile "$TMP/dockerd.pid" \
    -H "$DOCKER_HOST" --iptables=false --ip6tables=false >"$TMP/dockerd.log" 2>&1 &
  for _ in $(seq 1 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
  DOCKERD_PID=$(cat "$TMP/dockerd.pid" 2>/dev/null)
  docker info >/dev/null 2>&1 || { tail -20 "$TMP/dockerd.log" >&2; fail "dockerd did not start"; }
  [ "$(id -u)" = 0 ] || as_root chmod 666 "$TMP/docker.sock"
fi

base_images_from_debian() {
  command -v debootstrap >/dev/null || as_root apt-get install -y -qq debootstrap >/dev/null 2>&1
  local fs="$TMP/rootfs"
  as_root debootstrap --variant=minbase bookworm "$fs" http://deb.debian.org/debian >"$TMP/debootstrap.log" 2>&1 ||
    { tail -5 "$TMP/debootstrap.log" >&2; return 1; }
  as_root rm -rf "$fs"/var/cache/apt/archives/*.deb "$fs"/var/lib/apt/lists/*
  as_root tar -C "$fs" -c . | docker import - debian:bookworm-slim >/dev/null || return 1
  as_root cp /etc/resolv.conf "$fs/etc/resolv.conf"
  as_root mkdir -p "$fs/usr/local/share/ca-certificates"
  as_root cp /usr/local/share/ca-certificates/*.crt "$fs/usr/local/share/ca-certificates/" 2>/dev/null
  as_root chroot "$fs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates && update-ca-certificates && apt-get clean' \
    >"$TMP/chroot.log" 2>&1 || { tail -5 "$TMP/chroot.log" >&2; return 1; }
  as_root mkdir -p "$fs/usr/local/rust"
  as_root cp -a "$(rustc --print sysroot)/." "$fs/usr/local/rust/"
  as_root rm -rf "$fs/usr/local/rust/share/doc"
  as_root tar -C "$fs" -c . | docker import \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' - rust:1-slim-bookworm >/dev/null || return 1
  as_root rm -rf "$fs"
}

for base in rust:1-slim-bookworm debian:bookworm-slim; do
  docker image inspect "$base" >/dev/null 2>&1 && continue
  docker pull -q "$base" >/dev/null 2>&1 && continue
  [ -n "$DOCKERD_PID" ] || fail "cannot pull $base into the engine at ${DOCKER_HOST:-/var/run/docker.sock}"
  echo "container: no registry answers; making debian:bookworm-slim and rust:1-slim-bookworm from Debian's packages" >&2
  base_images_from_debian || fail "could not make the base images"
  break
done

t0=$(date +%s)
(cd "$ROOT" && DOCKER_BUILDKIT=0 docker build --network host -t "$IMAGE" .) >"$TMP/build.log" 2>&1 ||
  { tail -30 "$TMP/build.log" >&2; fail "docker build failed"; }
echo "container: docker build -t $IMAGE . took $(( $(date +%s) - t0 )) s" >&2

if [ ! -d "$HERE/node_modules/testcontainers" ] || [ ! -d "$HERE/node_modules/amqplib" ]; then
  (cd "$HERE" && npm install -q --no-audit --no-fund >&2)
fi
VENV="$HOME/.cache/warren-container/venv"
if ! "$VENV/bin/python" -c "import testcontainers.community.rabbitmq, pytest" 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "testcontainers[rabbitmq]==4.15.0" "pika>=1.3,<2" "pytest>=8" >&2
fi

# Ryuk, testcontainers' reaper, is an image from Docker Hub; the tests stop what they start.
export TESTCONTAINERS_RYUK_DISABLED=true WARREN_IMAGE="$IMAGE"
(cd "$HERE" && node --test --test-reporter=spec container.test.js) >"$TMP/node.log" 2>&1
node_rc=$?
cat "$TMP/node.log" >&2
p=$(grep -E '^ℹ pass' "$TMP/node.log" | grep -oE '[0-9]+'); f=$(grep -E '^ℹ fail' "$TMP/node.log" | grep -oE '[0-9]+')
p=${p:-0}; f=${f:-1}
[ "$node_rc" != 0 ] && [ "$f" = 0 ] && f=1

(cd "$HERE" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider test_testcontainers.py) >"$TMP/py.log" 2>&1
py_rc=$?
cat "$TMP/py.log" >&2
pp=$(tail -1 "$TMP/py.log" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); pf=$(tail -1 "$TMP/py.log" | grep -oE '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
pp=${pp:-0}; pf=${pf:-0}
[ "$py_rc" != 0 ] && [ "$pf" = 0 ] && pf=1

echo "$((p + pp)) passed, $((f + pf)) failed"
[ "$node_rc" = 0 ] && [ "$py_rc" = 0 ]
