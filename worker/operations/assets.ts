import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The shipped migration and model fragment (`prisma/outbox/` in the package). Found by walking up
 * from this file, so it works from the sources (worker/) and from the build (dist/worker/).
 */
export function outboxAssetsDir(): string {
  return join(packageRoot(), 'prisma', 'outbox')
}

/** The folder holding prisma-outbox's package.json and prisma/outbox. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'prisma', 'outbox', 'migration.sql')) && existsSync(join(dir, 'package.json'))) return dir
    dir = dirname(dir)
  }
  throw new Error('prisma-outbox is installed without its prisma/outbox folder; reinstall the package')
}

export function readAsset(
  name: 'migration.sql' | 'model.prisma' | 'inbox-migration.sql' | 'inbox-model.prisma',
): string {
  return readFileSync(join(outboxAssetsDir(), name), 'utf8')
}
