import type { Admin, Kafka } from 'kafkajs'

/**
 * A kafkajs admin client, connected when first asked for and kept only once connected: an admin
 * whose connect() failed is disconnected and forgotten, so the next call connects a new one
 * rather than asking through a client that never connected. Callers waiting together share one
 * connect.
 */
export class LazyAdmin {
  private admin: Admin | undefined
  private connecting: Promise<Admin> | undefined

  constructor(private readonly kafka: Pick<Kafka, 'admin'>) {}

  connected(): Promise<Admin> {
    if (this.admin) return Promise.resolve(this.admin)
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined
    })
    return this.connecting
  }

  /** The topics of `topics` that Kafka does not list: missing, or not visible to this client. */
  async unavailable(topics: string[]): Promise<string[]> {
    // A metadata request for all topics lists those that exist and this client may see.
    const existing = new Set(await (await this.connected()).listTopics())
    return topics.filter((topic) => !existing.has(topic))
  }

  async disconnect(): Promise<void> {
    const old = this.admin
    this.admin = undefined
    await old?.disconnect().catch(() => {})
  }

  private async connect(): Promise<Admin> {
    const fresh = this.kafka.admin()
    try {
      await fresh.connect()
    } catch (error) {
      await fresh.disconnect().catch(() => {})
      throw error
    }
    this.admin = fresh
    return fresh
  }
}
