import { createAppClient } from '../helpers/prisma.js'
import { percentile } from './latency.js'

const event = (i: number) => ({
  aggregateType: 'order',
  aggregateId: i,
  type: 'order.created',
  payload: { id: i, total: '12.50', items: [{ sku: 'a', qty: 1 }] },
})

/** Milliseconds one call of `fn` takes. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

const median = (times: number[]) =>
  percentile(
    [...times].sort((a, b) => a - b),
    50,
  )

/**
 * The median of each function over `runs` calls, after a short warm-up. The calls take turns,
 * each round starting one further along, so a slow spell of the machine hits all alike.
 */
async function interleavedMedians(runs: number, fns: (() => Promise<unknown>)[]): Promise<number[]> {
  for (let i = 0; i < 20; i++) for (const fn of fns) await fn()
  const times = fns.map((): number[] => [])
  for (let i = 0; i < runs; i++) {
    for (let j = 0; j < fns.length; j++) {
      const k = (i + j) % fns.length
      times[k]?.push(await timed(fns[k] as () => Promise<unknown>))
    }
  }
  return times.map(median)
}

/**
 * What emit costs an app: the median Prisma transaction that creates an order, without and with
 * one emit, and emitMany(100) against 100 × emit.
 */
export async function measureWriteSide(url: string, runs: number) {
  const prisma = createAppClient(url)
  try {
    const data = { customer: 'c', total: '12.50' }
    // The reference: the same transaction with a second order instead of an event, i.e. what
    // any one more statement (one more round trip) costs.
    const [txMs, txEmitMs, txTwoOrdersMs] = (await interleavedMedians(runs, [
      () => prisma.$transaction(async (tx) => tx.order.create({ data })),
      () =>
        prisma.$transaction(async (tx) => {
          const order = await tx.order.create({ data })
          await tx.outbox.emit(event(order.id))
        }),
      () =>
        prisma.$transaction(async (tx) => {
          await tx.order.create({ data })
          await tx.order.create({ data })
        }),
    ])) as [number, number, number]
    const [emitMany100, emit100] = (await interleavedMedians(Math.max(10, runs / 10), [
      () => prisma.$transaction(async (tx) => tx.outbox.emitMany(Array.from({ length: 100 }, (_, i) => event(i)))),
      () =>
        prisma.$transaction(async (tx) => {
          for (let i = 0; i < 100; i++) await tx.outbox.emit(event(i))
        }),
    ])) as [number, number]
    return {
      txMs,
      txEmitMs,
      emitRatio: txEmitMs / txMs,
      txTwoOrdersMs,
      twoOrdersRatio: txTwoOrdersMs / txMs,
      emitMany100Ms: emitMany100,
      emit100Ms: emit100,
      manyRatio: emit100 / emitMany100,
    }
  } finally {
    await prisma.$disconnect()
  }
}
