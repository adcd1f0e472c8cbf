#!/usr/bin/env bash
# Builds the CI's PostgreSQL and Kafka images with no registry: a minimal Debian root made by
# debootstrap from Debian's packages, PostgreSQL or a JRE installed into it by apt in a chroot (and
# Kafka's Maven Central jars, the ones test/services/kafka-pom.xml pins, copied in), imported as
# one layer by `docker import` with the configuration the official image has. Not `docker build`:
# with the vfs storage driver each build step copies the whole root (a Dockerfile took ~7 min).
# Tags carry a hash of the recipe (this directory and the pom), so an image already built is
# reused. Prints the two image names on stdout, progress on stderr. Runs as root.
set -euo pipefail
cd "$(dirname "$0")"
suite=trixie # PostgreSQL 17 and OpenJDK 21, as in the official images containers.ts defaults to
mirror=http://deb.debian.org/debian
kafka_pom=../../test/services/kafka-pom.xml
kafka_version=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$kafka_pom")
recipe=$(cat build.sh postgres-entrypoint.sh kafka-run.sh kafka-log4j.properties "$kafka_pom" | sha256sum | cut -c1-12)
postgres=prisma-outbox-ci/postgres:17-$recipe
kafka=prisma-outbox-ci/kafka:$kafka_version-$recipe

work=$(mktemp -d /var/tmp/prisma-outbox-images.XXXXXX)
cleanup() {
  for proc in "$work"/*/proc; do
    if mountpoint -q "$proc"; then umount "$proc"; fi
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

present() { docker image inspect "$1" >/dev/null 2>&1; }

new_root() { # name: a fresh copy of the minimal Debian root, debootstrapped once per run
  if [ ! -d "$work/base" ]; then
    echo "debootstrap $suite (minbase) from $mirror" >&2
    debootstrap --variant=minbase "$suite" "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 ||
      { tail -30 "$work/debootstrap.log" >&2 && return 1; }
    slim "$work/base"
  fi
  cp -a "$work/base" "$work/$1"
}

# Documentation and message catalogues are left out (as slim images do): vfs copies every file of
# the image each time a container is created, and these are a third of PostgreSQL's files.
slim() { # root
  printf 'path-exclude=/usr/share/%s/*\n' doc man info locale >"$1/etc/dpkg/dpkg.cfg.d/slim"
  rm -rf "$1"/usr/share/{doc,man,info,locale}/*
  mkdir -p "$1/usr/share/man/man1" # update-alternatives links the JRE's man pages there
}

chroot_install() { # root packages...: apt in the chroot, starting no service (policy-rc.d)
  local root=$1
  shift
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc"
  if ! chroot "$root" sh -ec 'apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    apt-get clean' sh "$@" >"$work/apt.log" 2>&1; then
    tail -30 "$work/apt.log" >&2
    return 1
  fi
  umount "$root/proc"
  rm -rf "$root/usr/sbin/policy-rc.d" "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
}

# One layer, with Dockerfile-style configuration. `docker import` takes no STOPSIGNAL; the official
# postgres image's SIGINT is sent by containers.ts itself when a test stops a container.
import_root() { # root tag instructions...
  local root=$1 tag=$2 changes=()
  shift 2
  for instruction in "$@"; do changes+=(--change "$instruction"); done
  tar -C "$root" --numeric-owner -c . | docker import "${changes[@]}" - "$tag" >/dev/null
}

build_postgres() {
  local root=$work/postgres
  echo "building $postgres" >&2
  new_root postgres
  # As the official image: no cluster at install time; PGDATA is initialised on first start.
  mkdir -p "$root/etc/postgresql-common/createcluster.d"
  echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.d/no-main-cluster.conf"
  chroot_install "$root" postgresql-17 gosu
  chroot "$root" install -d -o postgres -g postgres -m 3777 /run/postgresql
  install -m 755 postgres-entrypoint.sh "$root/usr/local/bin/docker-entrypoint.sh"
  import_root "$root" "$postgres" \
    'ENV PATH=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV PGDATA=/var/lib/postgresql/data' 'ENV LANG=C.UTF-8' 'EXPOSE 5432' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
}

build_kafka() {
  local root=$work/kafka jars
  echo "building $kafka" >&2
  # The same jars the local broker runs (Maven fetches them once into ~/.m2).
  jars=$(cd ../.. && npx tsx -e "import('./test/services/local-kafka.ts').then((m) => console.log(m.kafkaJarsDir()))")
  new_root kafka
  chroot_install "$root" openjdk-21-jre-headless
  chroot "$root" useradd --system --create-home --home-dir /home/appuser appuser
  mkdir -p "$root/opt/kafka/config" "$root/etc/kafka/docker"
  cp -r "$jars" "$root/opt/kafka/libs"
  install -m 644 kafka-log4j.properties "$root/opt/kafka/config/log4j.properties"
  install -m 755 kafka-run.sh "$root/etc/kafka/docker/run"
  import_root "$root" "$kafka" 'USER appuser' 'WORKDIR /home/appuser' 'EXPOSE 9092' \
    'CMD ["/etc/kafka/docker/run"]'
}

# (`if`, not `||`: errexit does not apply inside a function called on the left of `||`)
if ! present "$postgres"; then build_postgres; fi
if ! present "$kafka"; then build_kafka; fi
# Images of earlier recipes are not used again.
old=$(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^prisma-outbox-ci/' | grep -v -x -e "$postgres" -e "$kafka" || true)
xargs -r docker rmi >/dev/null <<<"$old"
echo "$postgres"
echo "$kafka"
