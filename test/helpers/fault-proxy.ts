import { connect, createServer, type Socket } from 'node:net'

/**
 * A TCP proxy on 127.0.0.1 that injects the network faults production has: latency, resets, a
 * partition (blackhole) and refused connections. Every control can be called at any time.
 *
 * Each direction of each connection is a queue of what arrived (data, FIN, RST), delivered in
 * arrival order once due (arrival + latency) and while not blackholed. Sockets are half-open
 * capable, so the proxy, not Node, decides when a FIN crosses: a FIN must not overtake the data
 * before it, nor cross a partition.
 */
export interface FaultProxy {
  /** The port clients connect to (on 127.0.0.1). */
  readonly port: number
  /** `127.0.0.1:<port>`. */
  readonly address: string
  /** Delays every chunk (and FIN or RST) in both directions by `ms` from now on; 0 removes it. */
  latency(ms: number): void
  /** Sends an RST to both ends of every open connection. */
  resetAll(): void
  /**
   * A partition: connections stay open, nothing crosses either way, nothing comes back (no data,
   * FIN or RST). New connections are accepted but not passed on, so unlike a real partition a
   * client's connect succeeds: it is its first request that times out, not the connect.
   */
  blackhole(): void
  /**
   * New connections are reset as soon as they are accepted; open ones go on. A client sees
   * ECONNRESET (on connect or on its first read), where a closed port would give ECONNREFUSED.
   */
  refuse(): void
  /** Ends blackhole and refuse; what a partition held is delivered (see `restore` below). */
  restore(): void
  stats(): FaultProxyStats
  /** The connections open now, to partition one of them alone. */
  links(): ProxiedLink[]
  /** Stops listening and resets every connection. */
  close(): Promise<void>
}

export interface FaultProxyStats {
  accepted: number
  /** Connections not yet closed on both sides. */
  open: number
  /** Connections reset by `refuse()`. */
  refused: number
  /** Connections reset by `resetAll()`. */
  reset: number
  bytesFromClient: number
  bytesToUpstream: number
  bytesFromUpstream: number
  bytesToClient: number
}

/** One proxied connection. */
export interface ProxiedLink {
  /** The client's first chunk (for PostgreSQL, the startup packet: it names a replication connection). */
  readonly head: Buffer | undefined
  /** When the client last sent something (ms since the epoch), 0 if never. */
  readonly lastFromClient: number
  /** Partitions this connection alone, as blackhole() does all of them; restore() heals it. */
  blackhole(): void
}

type Item = { due: number } & ({ kind: 'data'; chunk: Buffer } | { kind: 'end' } | { kind: 'reset' })

/** One direction of one connection. */
class Lane {
  private queue: Item[] = []
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly source: () => Socket | undefined,
    private readonly target: () => Socket | undefined,
    private readonly held: () => boolean,
    private readonly forwarded: (bytes: number) => void,
  ) {}

  push(item: Item): void {
    this.queue.push(item)
    this.pump()
  }

  /** Delivers what is due, in order; a later item never overtakes an earlier one. */
  pump(): void {
    if (this.timer) return // the pending timer pumps
    while (this.queue.length > 0 && !this.held()) {
      const head = this.queue[0] as Item
      const wait = head.due - Date.now()
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined
          this.pump()
        }, wait)
        return
      }
      this.queue.shift()
      this.deliver(head)
    }
  }

  clear(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.queue = []
  }

  private deliver(item: Item): void {
    const target = this.target()
    if (!target || target.destroyed) return
    if (item.kind === 'end') {
      target.end()
    } else if (item.kind === 'reset') {
      target.resetAndDestroy()
    } else {
      this.forwarded(item.chunk.length)
      if (!target.write(item.chunk)) {
        // Backpressure: stop reading the sender until the receiver drains, as TCP would.
        const source = this.source()
        source?.pause()
        target.once('drain', () => source?.resume())
      }
    }
  }
}

export async function startFaultProxy(options: {
  upstream: { host: string; port: number }
  /** Default: a free port chosen by the OS. */
  port?: number
}): Promise<FaultProxy> {
  const { upstream } = options
  let delayMs = 0
  let blackholed = false
  let refusing = false
  const stats: FaultProxyStats = {
    accepted: 0,
    open: 0,
    refused: 0,
    reset: 0,
    bytesFromClient: 0,
    bytesToUpstream: 0,
    bytesFromUpstream: 0,
    bytesToClient: 0,
  }

  interface Link {
    client: Socket
    upstream: Socket | undefined
    toUpstream: Lane
    toClient: Lane
    head: Buffer | undefined
    lastFromClient: number
    /** Partitioned alone (ProxiedLink.blackhole). */
    cut: boolean
  }
  const links = new Set<Link>()

  const due = () => Date.now() + delayMs
  /** A socket's FIN and RST become items of the lane that carries its data onward. */
  const feed = (socket: Socket, lane: Lane, counted: (bytes: number) => void) => {
    socket.setNoDelay(true) // Nagle would add its own latency to small requests
    socket.on('data', (chunk: Buffer) => {
      counted(chunk.length)
      lane.push({ kind: 'data', chunk, due: due() })
    })
    socket.on('end', () => lane.push({ kind: 'end', due: due() }))
    // ECONNRESET from the peer, EPIPE, or a refused upstream: the other side gets an RST.
    socket.on('error', () => lane.push({ kind: 'reset', due: due() }))
  }

  const forget = (link: Link) => {
    if (link.client.destroyed && link.upstream?.destroyed !== false && links.delete(link)) stats.open--
  }

  const connectUpstream = (link: Link) => {
    const socket = connect({ host: upstream.host, port: upstream.port, allowHalfOpen: true })
    link.upstream = socket
    feed(socket, link.toClient, (n) => {
      stats.bytesFromUpstream += n
    })
    socket.on('close', () => forget(link))
    link.toUpstream.pump()
  }

  const server = createServer({ allowHalfOpen: true }, (client) => {
    stats.accepted++
    if (refusing) {
      stats.refused++
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    const link: Link = {
      client,
      upstream: undefined,
      // Until the upstream connection exists (it waits out a partition), client bytes are held.
      toUpstream: new Lane(
        () => link.client,
        () => link.upstream,
        () => blackholed || link.cut || link.upstream === undefined,
        (n) => {
          stats.bytesToUpstream += n
        },
      ),
      toClient: new Lane(
        () => link.upstream,
        () => link.client,
        () => blackholed || link.cut,
        (n) => {
          stats.bytesToClient += n
        },
      ),
      head: undefined,
      lastFromClient: 0,
      cut: false,
    }
    links.add(link)
    stats.open++
    feed(client, link.toUpstream, (n) => {
      stats.bytesFromClient += n
    })
    client.on('data', (chunk: Buffer) => {
      link.head ??= chunk
      link.lastFromClient = Date.now()
    })
    client.on('close', () => forget(link))
    // During a partition the upstream must see nothing, not even a connection attempt.
    if (!blackholed) connectUpstream(link)
  })

  const resetLink = (link: Link) => {
    link.toUpstream.clear()
    link.toClient.clear()
    if (!link.client.destroyed) link.client.resetAndDestroy()
    if (link.upstream && !link.upstream.destroyed) link.upstream.resetAndDestroy()
    if (links.delete(link)) stats.open--
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('could not read the proxy port')

  return {
    port: address.port,
    address: `127.0.0.1:${address.port}`,
    latency(ms) {
      delayMs = ms
    },
    resetAll() {
      for (const link of [...links]) {
        stats.reset++
        resetLink(link)
      }
    },
    blackhole() {
      blackholed = true
    },
    refuse() {
      refusing = true
    },
    /**
     * A healed partition resumes: what either side sent meanwhile is delivered in order, FINs and
     * RSTs included, and held connection attempts are made. That is what TCP does when a partition
     * heals before its retransmissions give up, and it is the hard case for a client (a connection
     * it may have written off comes back with old bytes). To model a partition that outlived TCP's
     * patience, call `resetAll()` before `restore()`.
     */
    restore() {
      blackholed = false
      refusing = false
      for (const link of links) {
        link.cut = false
        if (link.upstream === undefined) connectUpstream(link)
        link.toUpstream.pump()
        link.toClient.pump()
      }
    },
    stats: () => ({ ...stats }),
    links: () =>
      [...links].map((link) => ({
        get head() {
          return link.head
        },
        get lastFromClient() {
          return link.lastFromClient
        },
        blackhole() {
          link.cut = true
        },
      })),
    async close() {
      refusing = true
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const link of [...links]) resetLink(link)
      await closed
    },
  }
}
