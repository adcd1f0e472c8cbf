import { type LocalKafka, type LocalKafkaOptions, startLocalKafka } from '../services/local-kafka.js'
import { freePort } from '../services/ports.js'
import { type FaultProxy, startFaultProxy } from './fault-proxy.js'

/** A local broker whose client traffic all crosses `proxy`. */
export interface ProxiedKafka extends LocalKafka {
  proxy: FaultProxy
}

/**
 * A local Kafka behind a fault proxy. A Kafka client connects to the bootstrap address only to
 * learn where the brokers are, then to the advertised address; so the broker advertises the
 * proxy's port, and `brokers` (bootstrap included) is the proxy's address. `directBrokers`
 * bypasses the proxy (for admin work and checkers). `stop()`/`start()` restart the broker behind
 * the same proxy; `dispose()` also closes the proxy.
 */
export async function startKafkaBehindProxy(
  options: Pick<LocalKafkaOptions, 'autoCreateTopics'> = {},
): Promise<ProxiedKafka> {
  // The proxy listens first, so its port (which the broker advertises) is ours from the start.
  const port = await freePort()
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port } })
  let kafka: LocalKafka
  try {
    kafka = await startLocalKafka({ ...options, port, advertisedPort: proxy.port })
  } catch (error) {
    await proxy.close()
    throw error
  }
  return {
    ...kafka,
    proxy,
    async dispose() {
      await proxy.close()
      await kafka.dispose()
    },
  }
}

/**
 * A fault proxy in front of the PostgreSQL server of `databaseUrl`, and the same URL through it
 * (user, password, database and parameters unchanged). Close the proxy when done.
 */
export async function proxyDatabaseUrl(databaseUrl: string): Promise<{ url: string; proxy: FaultProxy }> {
  const parsed = new URL(databaseUrl)
  if (!parsed.hostname || parsed.searchParams.has('host')) {
    throw new Error('proxyDatabaseUrl needs a TCP address in the URL (host and port), not a Unix socket')
  }
  const proxy = await startFaultProxy({
    upstream: { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 5432) },
  })
  parsed.hostname = '127.0.0.1'
  parsed.port = String(proxy.port)
  return { url: parsed.toString(), proxy }
}
