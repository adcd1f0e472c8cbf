#!/usr/bin/env bash
# CI: the testcontainers path, which `npm test` takes wherever Docker runs. This machine has no
# registry, so: a Docker engine of our own (Debian's docker.io, vfs storage, its own socket and
# data directory, stopped at the end), look-alikes of the official images built from Debian's
# packages and Kafka's Maven Central jars (.ci/images/build.sh; kept in the data directory, so a
# second run reuses them), then tests through testcontainers. Run by .ci/run after `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${PRISMA_OUTBOX_CI_STATE:-/var/lib/prisma-outbox-ci} # the engine's data, images included
run=/run/prisma-outbox-ci
started=$SECONDS
step() { printf '\n-- containers: %s (%ss)\n' "$1" "$((SECONDS - started))"; }

step "docker.io, debootstrap"
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "dockerd (vfs)"
mkdir -p "$state" "$run"
dockerd --storage-driver=vfs --data-root "$state/docker" --exec-root "$run/exec" \
  --pidfile "$run/dockerd.pid" -H "unix://$run/docker.sock" >"$state/dockerd.log" 2>&1 &
dockerd_pid=$!
stop_dockerd() {
  kill "$dockerd_pid" 2>/dev/null || return 0
  wait "$dockerd_pid" 2>/dev/null || true
}
trap stop_dockerd EXIT
export DOCKER_HOST=unix://$run/docker.sock
for _ in $(seq 60); do docker version >/dev/null 2>&1 && break || sleep 0.5; done
docker version --format 'Docker engine {{.Server.Version}}' || { tail -20 "$state/dockerd.log" && exit 1; }
# Containers a killed earlier run left behind (there is no reaper here, see below).
docker ps -aq --filter label=org.testcontainers | xargs -r docker rm -f >/dev/null

step "images (built when their recipe changed, else reused)"
built=$(bash .ci/images/build.sh)
mapfile -t images <<<"$built"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F -e "${images[0]}" -e "${images[1]}"
npm run generate --silent >/dev/null

step "a daemon that answers but cannot pull: one line, then local processes"
log=$(mktemp)
OUTBOX_TEST_POSTGRES_IMAGE=prisma-outbox-ci/never-built:0 npx vitest run test/integration/plumbing.test.ts | tee "$log"
grep -q 'services: containers unavailable: .* could not start: .*; starting local PostgreSQL and Kafka processes instead' "$log"
rm -f "$log"

# From here on, containers are required: failing to start them fails the step. The testcontainers
# reaper (Ryuk) is off, since its image cannot be pulled here; the line above removes leftovers.
export OUTBOX_TEST_SERVICES=containers TESTCONTAINERS_RYUK_DISABLED=true
export OUTBOX_TEST_POSTGRES_IMAGE=${images[0]} OUTBOX_TEST_KAFKA_IMAGE=${images[1]}

step "plumbing and relay tests through testcontainers"
npx vitest run test/integration/plumbing.test.ts test/integration/relay.test.ts

step "fault tests through testcontainers: Kafka, then PostgreSQL, stopped and started again"
npx vitest run test/faults/chaos.test.ts -t 'Kafka stopped for 8 s|PostgreSQL restarted.*table mode'

step "done"
