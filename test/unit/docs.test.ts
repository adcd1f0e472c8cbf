/**
 * The docs cannot drift: the generated tables (options, metrics) match what the code renders, and
 * every relative link and #anchor in README.md and docs/*.md resolves.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, test } from 'vitest'
import { GENERATED_PAGES } from '../../worker/operations/options-doc.js'

const root = join(import.meta.dirname, '../..')
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]
/**
 * Pages other sessions add in parallel, linked before they land: a link to one is accepted while
 * the file is absent, and checked (anchors too) once it exists.
 */
const PENDING = new Set(['docs/testing.md'])

/** The text without fenced code blocks and inline code, where brackets are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's anchor for each heading of a page (`## Five minutes: x` → `five-minutes-x`). */
function anchors(markdown: string): Set<string> {
  const found = new Set<string>()
  const seen = new Map<string, number>()
  for (const [, heading] of markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = (heading as string)
      .toLowerCase()
      .replace(/<[^>]+>/g, '')
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    found.add(count === 0 ? base : `${base}-${count}`)
  }
  return found
}

describe('generated tables', () => {
  test.each(Object.keys(GENERATED_PAGES))('%s matches the code (run npm run docs:options)', (page) => {
    const committed = readFileSync(join(root, page), 'utf8')
    expect(committed).toBe(GENERATED_PAGES[page]?.(committed))
  })
})

describe('links', () => {
  test.each(pages)('every relative link and anchor in %s resolves', (page) => {
    const file = join(root, page)
    const problems: string[] = []
    for (const [, target] of prose(readFileSync(file, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target as string)) continue // https:, mailto:
      const [path = '', anchor] = (target as string).split('#')
      const linked = path === '' ? file : resolve(dirname(file), decodeURIComponent(path))
      const name = relative(root, linked)
      if (!existsSync(linked)) {
        if (!PENDING.has(name)) problems.push(`${target}: no such file ${name}`)
        continue
      }
      if (anchor === undefined) continue
      if (statSync(linked).isDirectory() || !linked.endsWith('.md')) {
        problems.push(`${target}: an anchor into a file that is not Markdown`)
        continue
      }
      if (!anchors(readFileSync(linked, 'utf8')).has(anchor))
        problems.push(`${target}: ${name} has no heading #${anchor}`)
    }
    expect(problems).toEqual([])
  })

  test("the anchor rule is GitHub's", () => {
    expect([
      ...anchors("## Five minutes: your app's first event in Kafka\n## `withOutbox`: events ride\n## A\n## A"),
    ]).toEqual(['five-minutes-your-apps-first-event-in-kafka', 'withoutbox-events-ride', 'a', 'a-1'])
  })
})
