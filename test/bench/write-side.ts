import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaClient } from '../../prisma/generated/client.js'
import { outbox, withOutbox } from '../../src/index.js'
import { createTestDatabase } from '../helpers/database.js'
import type { AppClient } from '../helpers/prisma.js'
import { startDelayProxy } from './delay-proxy.js'
import { percentile } from './latency.js'

const event = (i: number) => ({
  aggregateType: 'order',
  aggregateId: i,
  type: 'order.created',
  payload: { id: i, total: '12.50', items: [{ sku: 'a', qty: 1 }] },
})
const data = { customer: 'c', total: '12.50' }

/** How the app writes its events: the outbox mode, and whether withOutbox wraps the adapter. */
export const WRITE_VARIANTS = [
  { name: 'table', mode: 'table', withOutbox: false },
  { name: 'table + withOutbox', mode: 'table', withOutbox: true },
  { name: 'message', mode: 'message', withOutbox: false },
  { name: 'message + withOutbox', mode: 'message', withOutbox: true },
] as const
type Variant = (typeof WRITE_VARIANTS)[number]

/** Milliseconds one call of `fn` takes. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  )

/**
 * The median of each function over `runs` calls, after a short warm-up. The calls take turns in
 * a new random order each round, so a slow spell of the machine hits all alike and no function
 * always follows the same one (what ran just before measurably changes a transaction's time).
 */
async function interleavedMedians(runs: number, fns: (() => Promise<unknown>)[]): Promise<number[]> {
  for (let i = 0; i < 20; i++) for (const fn of fns) await fn()
  const times = fns.map((): number[] => [])
  const order = fns.map((_, k) => k)
  for (let i = 0; i < runs; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      const r = Math.floor(Math.random() * (j + 1))
      ;[order[j], order[r]] = [order[r] as number, order[j] as number]
    }
    for (const k of order) times[k]?.push(await timed(fns[k] as () => Promise<unknown>))
  }
  return times.map(median)
}

/** The transactions measured for each variant. */
function transactions(prisma: AppClient) {
  return {
    order: () => prisma.$transaction(async (tx) => tx.order.create({ data })),
    emit: () =>
      prisma.$transaction(async (tx) => {
        const order = await tx.order.create({ data })
        await tx.outbox.emit(event(order.id))
      }),
    emit10: () =>
      prisma.$transaction(async (tx) => {
        const order = await tx.order.create({ data })
        for (let i = 0; i < 10; i++) await tx.outbox.emit(event(order.id))
      }),
    emitMany10: () =>
      prisma.$transaction(async (tx) => {
        const order = await tx.order.create({ data })
        await tx.outbox.emitMany(Array.from({ length: 10 }, () => event(order.id)))
      }),
    emitMany100: () =>
      prisma.$transaction(async (tx) => tx.outbox.emitMany(Array.from({ length: 100 }, (_, i) => event(i)))),
    emit100: () =>
      prisma.$transaction(async (tx) => {
        for (let i = 0; i < 100; i++) await tx.outbox.emit(event(i))
      }),
  }
}

/**
 * Median WAL bytes one call of `fn` writes (pg_current_wal_lsn before and after), each call
 * measured on its own so the full-page images after a checkpoint stay outliers.
 */
async function walBytes(url: string, fn: () => Promise<unknown>, runs: number): Promise<number> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const lsn = async () =>
    BigInt((await client.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS lsn`)).rows[0].lsn)
  try {
    const sizes: number[] = []
    for (let i = 0; i < runs; i++) {
      const before = await lsn()
      await fn()
      sizes.push(Number((await lsn()) - before))
    }
    return median(sizes)
  } finally {
    await client.end()
  }
}

export interface VariantFigures {
  name: Variant['name']
  /** Medians in ms; ratios are to the same client's transaction with the order alone. */
  orderMs: number
  emitMs: number
  emitRatio: number
  emit10Ms: number
  emit10Ratio: number
  emitMany10Ms: number
  emitMany10Ratio: number
  emitMany100Ms: number
  emit100Ms: number
  /** WAL bytes of one event: order + emit minus order alone; and per event within emitMany(100). */
  walBytesPerEvent: number
  walBytesPerEventInMany100: number
}

/**
 * What emit costs an app, for each way of writing events: the median Prisma transaction that
 * creates an order, alone, with one emit, ten emits, emitMany(10); emitMany(100) against
 * 100 × emit; and the WAL each writes. Every variant has its own client; all are interleaved.
 */
export async function measureWriteSide(url: string, runs: number, variants: readonly Variant[] = WRITE_VARIANTS) {
  // Every client on one shared connection: variants then differ by what the client does, not by
  // which server backend happens to serve them (backends alone differ by up to ~10% here).
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  const client = (v: Pick<Variant, 'mode' | 'withOutbox'>): AppClient => {
    const adapter = new PrismaPg(pool)
    return new PrismaClient({ adapter: v.withOutbox ? withOutbox(adapter) : adapter }).$extends(
      outbox({ mode: v.mode }),
    ) as unknown as AppClient
  }
  const clients = variants.map(client)
  const plain = client({ mode: 'table', withOutbox: false })
  try {
    const base = transactions(plain)
    const each = clients.map(transactions)
    // The reference: the same transaction with a second order instead of an event, i.e. what
    // any one more statement (one more round trip) costs.
    const twoOrders = () =>
      plain.$transaction(async (tx) => {
        await tx.order.create({ data })
        await tx.order.create({ data })
      })
    const [orderMs, twoOrdersMs, ...small] = (await interleavedMedians(runs, [
      base.order,
      twoOrders,
      ...each.flatMap((t) => [t.order, t.emit, t.emit10, t.emitMany10]),
    ])) as number[]
    const large = await interleavedMedians(
      Math.max(10, runs / 10),
      each.flatMap((t) => [t.emitMany100, t.emit100]),
    )
    const figures: VariantFigures[] = []
    for (const [index, variant] of variants.entries()) {
      const t = each[index] as ReturnType<typeof transactions>
      const [vOrder, emit, emit10, emitMany10] = small.slice(index * 4, index * 4 + 4) as number[]
      const [emitMany100, emit100] = large.slice(index * 2, index * 2 + 2) as number[]
      const walRuns = Math.max(50, runs / 5)
      const walOrder = await walBytes(url, t.order, walRuns)
      const walEmit = await walBytes(url, t.emit, walRuns)
      const walMany = await walBytes(url, t.emitMany100, walRuns / 5)
      figures.push({
        name: variant.name,
        orderMs: vOrder as number,
        emitMs: emit as number,
        emitRatio: (emit as number) / (vOrder as number),
        emit10Ms: emit10 as number,
        emit10Ratio: (emit10 as number) / (vOrder as number),
        emitMany10Ms: emitMany10 as number,
        emitMany10Ratio: (emitMany10 as number) / (vOrder as number),
        emitMany100Ms: emitMany100 as number,
        emit100Ms: emit100 as number,
        walBytesPerEvent: walEmit - walOrder,
        walBytesPerEventInMany100: walMany / 100,
      })
    }
    return {
      txMs: orderMs as number,
      txTwoOrdersMs: twoOrdersMs as number,
      twoOrdersRatio: (twoOrdersMs as number) / (orderMs as number),
      variants: figures,
    }
  } finally {
    await Promise.all([plain, ...clients].map((c) => c.$disconnect()))
    await pool.end()
  }
}

/**
 * The write side on a fresh database; with `oneWayMs`, through a proxy that delays each
 * direction by that much, as a network between app and database would.
 */
export async function writeSideOnFreshDatabase(adminUrl: string, runs: number, oneWayMs = 0) {
  const db = await createTestDatabase(adminUrl)
  const proxy = oneWayMs > 0 ? await startDelayProxy(db.url, oneWayMs) : undefined
  try {
    return await measureWriteSide(proxy?.url ?? db.url, runs)
  } finally {
    await proxy?.close()
    await db.dispose()
  }
}

const ms = (n: number) => n.toFixed(2)
const times = (ms: number, ratio: number) => `${ms.toFixed(2)} ms (×${ratio.toFixed(2)})`

/** The write side's own table: one row per variant, ratios to the same client's order alone. */
export function writeSideTable(result: Awaited<ReturnType<typeof measureWriteSide>>, title = 'Write side'): string[] {
  return [
    `${title} (median ms; ×: to the same client's transaction with the order alone. Without the ` +
      `extension: order alone ${ms(result.txMs)} ms, a second order ${times(result.txTwoOrdersMs, result.twoOrdersRatio)})`,
    '',
    '| variant | order alone | order + emit | order + 10 × emit | order + emitMany(10) | emitMany(100) / 100 × emit | WAL bytes per event: emit / in emitMany(100) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...result.variants.map(
      (v) =>
        `| ${v.name} | ${ms(v.orderMs)} | ${times(v.emitMs, v.emitRatio)} | ${times(v.emit10Ms, v.emit10Ratio)} | ` +
        `${times(v.emitMany10Ms, v.emitMany10Ratio)} | ${ms(v.emitMany100Ms)} / ${ms(v.emit100Ms)} | ` +
        `${Math.round(v.walBytesPerEvent)} / ${Math.round(v.walBytesPerEventInMany100)} |`,
    ),
  ]
}
