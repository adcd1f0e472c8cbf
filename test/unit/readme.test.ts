/**
 * The README's app snippet compiles as a new user's ESM app compiles it: `"type": "module"` and
 * `moduleResolution: NodeNext`, where a relative import needs its `.js`.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'

const root = join(import.meta.dirname, '../..')
// Under node_modules, so the snippet resolves @prisma/adapter-pg and @types/node as an app would.
const app = join(root, 'node_modules/.cache/prisma-outbox-readme-app')
afterAll(() => rmSync(app, { recursive: true, force: true }))

/** The first ```ts block of the README section `heading`. */
function snippet(heading: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf(heading))
  const match = /```ts\n([\s\S]*?)```/.exec(section)
  if (!match?.[1]) throw new Error(`no ts block under ${heading}`)
  return match[1]
}

test("the README's app code type-checks under NodeNext in an ESM package", () => {
  rmSync(app, { recursive: true, force: true })
  mkdirSync(join(app, 'generated/prisma'), { recursive: true })
  writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module' }))
  // The app's generated client, standing in for `prisma generate` with output ./generated/prisma.
  writeFileSync(
    join(app, 'generated/prisma/client.ts'),
    `export * from '${join(root, 'prisma/generated/client.js')}'\n`,
  )
  writeFileSync(join(app, 'app.ts'), snippet('## Five minutes'))
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2023',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        // The package as installed: `prisma-outbox` is this repository's src.
        paths: { 'prisma-outbox': [join(root, 'src/index.ts')] },
      },
      files: ['app.ts'],
    }),
  )
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', app], { encoding: 'utf8' })
  expect(result.stdout + result.stderr).toBe('')
  expect(result.status).toBe(0)
}, 120_000)
