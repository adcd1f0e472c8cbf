import type { DeliveryItem } from './event-delivery.js'

/**
 * What both deliveries share: the queue of items in stream order, the loop that takes a batch,
 * sends it and acknowledges it, one batch at a time (so records of one key reach Kafka in stream
 * order), and the close that waits for the send in flight.
 */
export class SendLoop {
  readonly queue: DeliveryItem[] = []
  private readonly abort = new AbortController()
  private wake: (() => void) | undefined
  /** A batch is being sent. */
  busy = false
  /** The publisher's call in progress, which can outlive the loop (a client retrying on its own). */
  private inFlight: Promise<unknown> = Promise.resolve()

  get signal(): AbortSignal {
    return this.abort.signal
  }

  enqueue(item: DeliveryItem): void {
    this.queue.push(item)
    this.wake?.()
  }

  /** Remembers the publisher's call in progress, so that close() can wait for it to settle. */
  track<T>(call: Promise<T>): Promise<T> {
    this.inFlight = call.catch(() => {})
    return call
  }

  /**
   * Until close(): takes a batch (`take`; empty when nothing can be sent yet), sends it (`send`;
   * false ends the loop) and acknowledges it. `pollMs`: when `take` finds items but none to send
   * (a transaction whose COMMIT is unread), look again after this long.
   */
  async run(options: {
    take: () => DeliveryItem[]
    send: (batch: DeliveryItem[]) => Promise<boolean>
    acknowledged: (batch: DeliveryItem[]) => void
    pollMs?: number
  }): Promise<void> {
    while (!this.abort.signal.aborted) {
      const batch = options.take()
      if (batch.length === 0) {
        await this.waitForMore(options.pollMs)
        continue
      }
      this.busy = true
      let more: boolean
      try {
        more = await options.send(batch)
      } finally {
        this.busy = false
      }
      if (!more || this.abort.signal.aborted) return
      options.acknowledged(batch)
    }
  }

  /**
   * Stops sending, then waits until the call in flight has settled and the producer is closed.
   * Kafka clients retry a request on their own, reconnecting if they must, after our loop gave up:
   * only once that call has settled can no record of this session reach Kafka after the next
   * session's records. Disconnecting first seals the publisher, so that call fails at once
   * instead of retrying for minutes.
   */
  async close(publisher: { disconnect(): Promise<void> }): Promise<void> {
    this.abort.abort()
    this.wake?.()
    const disconnecting = publisher.disconnect().catch(() => {})
    await this.inFlight
    await disconnecting
  }

  private async waitForMore(pollMs: number | undefined): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve
      if (pollMs !== undefined && this.queue.length > 0) setTimeout(resolve, pollMs)
    })
    this.wake = undefined
  }
}
