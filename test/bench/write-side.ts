import { createAppClient } from '../helpers/prisma.js'
import { percentile } from './latency.js'

const event = (i: number) => ({
  aggregateType: 'order',
  aggregateId: i,
  type: 'order.created',
  payload: { id: i, total: '12.50', items: [{ sku: 'a', qty: 1 }] },
})

/** Median ms of `fn` over `runs`, with a short warm-up. */
async function median(runs: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(20, runs); i++) await fn(i)
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    await fn(i)
    times.push(performance.now() - t)
  }
  return percentile(
    times.sort((a, b) => a - b),
    50,
  )
}

/**
 * What emit costs an app: the median Prisma transaction that creates an order, without and with
 * one emit (interleaved, so drift hits both), and emitMany(100) against 100 × emit.
 */
export async function measureWriteSide(url: string, runs: number) {
  const prisma = createAppClient(url)
  try {
    const plain: number[] = []
    const withEmit: number[] = []
    for (let round = 0; round < 2; round++) {
      plain.push(
        await median(runs / 2, () =>
          prisma.$transaction(async (tx) => tx.order.create({ data: { customer: 'c', total: '12.50' } })),
        ),
      )
      withEmit.push(
        await median(runs / 2, (i) =>
          prisma.$transaction(async (tx) => {
            const order = await tx.order.create({ data: { customer: 'c', total: '12.50' } })
            await tx.outbox.emit(event(order.id + i * 0))
          }),
        ),
      )
    }
    const emitMany100 = await median(Math.max(10, runs / 10), () =>
      prisma.$transaction(async (tx) => tx.outbox.emitMany(Array.from({ length: 100 }, (_, i) => event(i)))),
    )
    const emit100 = await median(Math.max(10, runs / 10), () =>
      prisma.$transaction(async (tx) => {
        for (let i = 0; i < 100; i++) await tx.outbox.emit(event(i))
      }),
    )
    const txMs = (plain[0] as number) / 2 + (plain[1] as number) / 2
    const txEmitMs = (withEmit[0] as number) / 2 + (withEmit[1] as number) / 2
    return {
      txMs,
      txEmitMs,
      emitRatio: txEmitMs / txMs,
      emitMany100Ms: emitMany100,
      emit100Ms: emit100,
      manyRatio: emit100 / emitMany100,
    }
  } finally {
    await prisma.$disconnect()
  }
}
