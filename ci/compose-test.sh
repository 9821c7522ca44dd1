#!/bin/sh
# make compose-test: build the images, bring docker-compose.yml up with Debian's podman and
# podman-compose, wait for the collector's first snapshot to come through the web API, check
# the dashboard page, and tear everything down. No registry is used: the base image comes
# from debootstrap (shared/containers.md has the recipe and the problems it works around).
set -eu
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/ci/containers.conf"
PROJECT=slabscope-ci
PORT=${SLABSCOPE_COMPOSE_PORT:-18000}
CA=/etc/ssl/certs/ca-certificates.crt  # the egress proxy's CA: mounted at build, never baked
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

step "tools"
if ! command -v podman-compose >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman podman-compose buildah runc \
    fuse-overlayfs slirp4netns uidmap debootstrap curl >/dev/null
fi

step "base image (debootstrap, once)"
if ! podman image exists localhost/python-base:bookworm; then
  ROOTFS=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR" >/dev/null
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' - localhost/python-base:bookworm >/dev/null
  rm -rf "$ROOTFS"
fi

step "build the app and database images"
# --format docker: the OCI format has no HEALTHCHECK, and podman drops the Dockerfile's.
podman build -q --format docker -v "$CA:$CA:ro" \
  --build-arg BASE_IMAGE=localhost/python-base:bookworm -t localhost/slabscope:ci . >/dev/null
podman build -q --format docker --build-arg BASE_IMAGE=localhost/python-base:bookworm \
  -t localhost/slabscope-db:ci deploy/db >/dev/null
case "$(podman image inspect --format '{{.Config.Healthcheck.Test}}' localhost/slabscope:ci)" in
  *healthz*) ;;
  *) echo "FAIL: the app image lost the Dockerfile's HEALTHCHECK"; exit 1 ;;
esac

export SLABSCOPE_IMAGE=localhost/slabscope:ci SLABSCOPE_DB_IMAGE=localhost/slabscope-db:ci
export SLABSCOPE_WEB_PORT=$PORT SLABSCOPE_HOST_NAME=compose-test SLABSCOPE_INTERVAL=2
export SLABSCOPE_DB_PASSWORD=ci-$(date +%s) SLABSCOPE_COLLECTOR_TOKEN=ci-token-$(date +%s%N)
cleanup() {
  podman-compose -p "$PROJECT" down -v >/dev/null 2>&1 || true
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

step "up"
podman-compose -p "$PROJECT" up -d --no-build >/dev/null 2>&1

step "wait for the collector's first snapshot through the web API"
ok=
for i in $(seq 1 90); do
  if curl -fsS "http://127.0.0.1:$PORT/api/v1/hosts/compose-test" 2>/dev/null | python3 2>/dev/null -c '
import json, sys
h = json.load(sys.stdin)["host"]["summary"]
assert h["memcg_live"] and h["memcg_dying"] is not None and h["slab_bytes"] > 0
print("host", h["name"], "kernel", h["kernel_release"], "dying", h["memcg_dying"],
      "live", h["memcg_live"], "slab", h["slab_bytes"])'; then ok=1; break; fi
  sleep 2
done
if [ -z "$ok" ]; then
  echo "no snapshot arrived; logs:"; podman-compose -p "$PROJECT" logs 2>&1 | tail -60
  exit 1
fi

step "the dashboard shows the host; the health checks answer"
curl -fsS "http://127.0.0.1:$PORT/" | grep -q 'data-host="compose-test"'
curl -fsS "http://127.0.0.1:$PORT/hosts/compose-test" | grep -q 'id="chart-memcgs"'
curl -fsS "http://127.0.0.1:$PORT/healthz" | grep -q '"database":"ok"'
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -q 'slabscope_memcg_dying{host="compose-test"}'
for c in $(podman ps --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
  user=$(podman exec "$c" id -u 2>/dev/null || echo "?")
  echo "   $c runs as uid $user"
done

step "stop (SIGTERM must end each container well before the 10 s kill)"
start=$(date +%s)
podman-compose -p "$PROJECT" stop >/dev/null 2>&1
echo "   stopped in $(( $(date +%s) - start )) s"
step "compose-test passed"
