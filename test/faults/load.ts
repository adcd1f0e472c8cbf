import type { AppClient } from '../helpers/prisma.js'
import type { History } from './history.js'

/**
 * Concurrent writers using the product as an app would: in one Prisma transaction, bump an
 * order (the aggregate) and emit an event carrying its new version; some transactions throw after
 * emitting, on purpose. Runs until stopped; errors from faults (a restarting database) are
 * expected and only make the outcome of that one transaction unknown.
 */
export function startLoad(
  prisma: AppClient,
  history: History,
  options: { writers: number; aggregates: number[]; ratePerWriter: number; topic: string },
) {
  let running = true
  let errors = 0
  const writer = async (w: number) => {
    let n = 0
    while (running) {
      n++
      const ids: string[] = []
      const rollback = n % 10 === w % 10
      // One or two aggregates per transaction, locked in id order so writers cannot deadlock.
      const picks = [...new Set([pick(options.aggregates), ...(n % 3 === 0 ? [pick(options.aggregates)] : [])])].sort(
        (a, b) => a - b,
      )
      try {
        const emitted = await prisma.$transaction(async (tx) => {
          const out: { id: string; aggregate: string; version: number }[] = []
          for (const orderId of picks) {
            const order = await tx.order.update({ where: { id: orderId }, data: { total: { increment: 1 } } })
            const version = Number(order.total)
            const payload = { orderId, version, writer: w, n }
            const id = await tx.outbox.emit({
              aggregateType: 'order',
              aggregateId: orderId,
              type: 'order.bumped',
              payload,
            })
            history.expect(id, {
              topic: options.topic,
              key: String(orderId),
              payloadJson: JSON.stringify(payload),
              headers: {},
              type: 'order.bumped',
              aggregateType: 'order',
            })
            ids.push(id)
            out.push({ id, aggregate: String(orderId), version })
          }
          if (rollback) throw new RolledBack()
          return out
        })
        for (const e of emitted) history.commit(e.id, e.aggregate, e.version)
      } catch (error) {
        if (error instanceof RolledBack) for (const id of ids) history.rolledBack.add(id)
        else {
          // The transaction may or may not have committed: its events may or may not arrive.
          errors++
          for (const id of ids) history.indeterminate.add(id)
          await new Promise((r) => setTimeout(r, 100))
        }
      }
      await new Promise((r) => setTimeout(r, 1000 / options.ratePerWriter))
    }
  }
  const done = Promise.all(Array.from({ length: options.writers }, (_, w) => writer(w)))
  return {
    get errors() {
      return errors
    },
    async stop() {
      running = false
      await done
    },
  }
}

class RolledBack extends Error {}

function pick<T>(items: T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T
}
