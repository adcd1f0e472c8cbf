/**
 * What `npm install prisma-outbox` gives a user: the tarball `npm pack` makes (its `prepare`
 * builds dist/ first). It must carry its license, every file package.json points at, and no
 * source map pointing at a file that is not in it.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { expect, test } from 'vitest'

const root = join(import.meta.dirname, '../..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

function packedFiles(): Set<string> {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // Some npm versions print the prepack script's banner before the JSON.
  const [report] = JSON.parse(out.slice(out.indexOf('['))) as { files: { path: string }[] }[]
  return new Set(report?.files.map((f) => f.path))
}

test('the npm tarball has its license, its entry points, and no source map to a missing file', () => {
  const files = packedFiles()

  expect(files).toContain('LICENSE')
  expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License/)
  expect(pkg.license).toBe('MIT')

  const entries = [
    pkg.bin['outbox-worker'],
    ...Object.values(pkg.exports as Record<string, string | Record<string, string>>).flatMap((e) =>
      typeof e === 'string' ? [e] : Object.values(e),
    ),
  ].map((p: string) => posix.normalize(p))
  for (const entry of entries) expect(files, `package.json points at ${entry}`).toContain(entry)

  const dangling: string[] = []
  for (const file of files) {
    if (!file.endsWith('.map')) continue
    const map = JSON.parse(readFileSync(join(root, file), 'utf8')) as { sources: string[] }
    for (const source of map.sources) {
      const target = posix.normalize(posix.join(posix.dirname(file), source))
      if (!files.has(target)) dangling.push(`${file} -> ${target}`)
    }
  }
  expect(dangling).toEqual([])
}, 180_000)
