/**
 * The fault proxy with real sockets: an echo server behind it, clients in front. Each fault is
 * asserted from the client's side (what a worker would see) and from the server's side.
 */
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js'

interface Client {
  socket: Socket
  received: () => string
  events: string[]
  error: Promise<NodeJS.ErrnoException>
}

let echo: Server
let serverSockets: Socket[]
let proxy: FaultProxy
const clients: Socket[] = []

beforeEach(async () => {
  serverSockets = []
  echo = createServer((socket) => {
    serverSockets.push(socket)
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  const address = echo.address()
  if (address === null || typeof address === 'string') throw new Error('no echo port')
  proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: address.port } })
})

afterEach(async () => {
  for (const socket of clients.splice(0)) socket.destroy()
  await proxy.close()
  for (const socket of serverSockets) socket.destroy()
  await new Promise((resolve) => echo.close(resolve))
})

async function client(): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port: proxy.port })
  clients.push(socket)
  let text = ''
  const events: string[] = []
  socket.on('data', (chunk) => {
    text += chunk.toString()
  })
  for (const event of ['end', 'close']) socket.on(event, () => events.push(event))
  const error = new Promise<NodeJS.ErrnoException>((resolve) => socket.on('error', resolve))
  await once(socket, 'connect')
  return { socket, received: () => text, events, error }
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('forwards both ways and counts the bytes', async () => {
  const c = await client()
  c.socket.write('hello')
  await until('the echo', () => c.received() === 'hello')
  expect(proxy.stats()).toMatchObject({
    accepted: 1,
    open: 1,
    bytesFromClient: 5,
    bytesToUpstream: 5,
    bytesFromUpstream: 5,
    bytesToClient: 5,
  })
})

test('latency delays each direction and keeps byte order when it changes mid-flight', async () => {
  const c = await client()
  proxy.latency(150)
  const sent = Date.now()
  c.socket.write('a')
  await sleep(20)
  proxy.latency(0)
  c.socket.write('b') // due before 'a', but must not overtake it
  await until('both echoes', () => c.received().length === 2)
  // 'a' waited 150 ms on the way in; 'b' waited behind it. The way back added nothing (latency 0).
  expect(c.received()).toBe('ab')
  expect(Date.now() - sent).toBeGreaterThanOrEqual(145)

  proxy.latency(100)
  const again = Date.now()
  c.socket.write('c')
  await until('the third echo', () => c.received() === 'abc')
  expect(Date.now() - again).toBeGreaterThanOrEqual(195) // 100 ms in, 100 ms out
})

test('resetAll gives the client ECONNRESET and resets the server side too', async () => {
  const c = await client()
  c.socket.write('x')
  await until('the echo', () => c.received() === 'x')
  const serverClosed = new Promise((resolve) => serverSockets[0]?.on('close', resolve))
  proxy.resetAll()
  expect((await c.error).code).toBe('ECONNRESET')
  expect(await serverClosed).toBe(true) // closed with an error: an RST, not a FIN
  expect(proxy.stats()).toMatchObject({ reset: 1, open: 0 })
})

test('blackhole delivers nothing and leaves both ends open; restore delivers what was held', async () => {
  const c = await client()
  c.socket.write('before')
  await until('the echo', () => c.received() === 'before')
  proxy.blackhole()
  c.socket.write('during')
  serverSockets[0]?.write('pushed') // the other direction is cut too
  const late = await client() // a connection made during the partition
  late.socket.write('late')
  await sleep(1000)
  expect(c.received()).toBe('before')
  expect(late.received()).toBe('')
  expect([...c.events, ...late.events]).toEqual([]) // no FIN, no RST
  expect(serverSockets).toHaveLength(1) // the upstream has not even seen the new connection
  const stats = proxy.stats()
  expect(stats.bytesFromClient).toBe('beforeduringlate'.length)
  expect(stats.bytesToUpstream).toBe('before'.length)

  proxy.restore()
  await until('the held bytes', () => c.received() === 'beforepushedduring' && late.received() === 'late')
  c.socket.write('after')
  await until('normal forwarding', () => c.received() === 'beforepushedduringafter')
})

test('one connection partitioned alone (found by its first bytes): the others go on; restore heals it', async () => {
  const cut = await client()
  const other = await client()
  cut.socket.write('replication')
  other.socket.write('query')
  await until('the echoes', () => cut.received() === 'replication' && other.received() === 'query')
  const link = proxy.links().find((l) => l.head?.toString() === 'replication')
  expect(link?.lastFromClient).toBeGreaterThan(0)
  link?.blackhole()
  cut.socket.write('-held')
  other.socket.write('-passes')
  await until('the other echo', () => other.received() === 'query-passes')
  await sleep(300)
  expect(cut.received()).toBe('replication')
  proxy.restore()
  await until('the held bytes', () => cut.received() === 'replication-held')
})

test('a FIN does not cross a blackhole', async () => {
  const c = await client()
  c.socket.write('x')
  await until('the echo', () => c.received() === 'x')
  const server = serverSockets[0] as Socket
  let serverEnded = false
  server.on('end', () => {
    serverEnded = true
  })
  proxy.blackhole()
  c.socket.end()
  await sleep(300)
  expect(serverEnded).toBe(false)
  proxy.restore()
  await until('the FIN', () => serverEnded)
})

test('refuse resets new connections and leaves open ones alone; restore accepts again', async () => {
  const open = await client()
  proxy.refuse()
  // The RST follows the handshake at once: Node reports it as a failed connect or a failed read.
  const refused = connect({ host: '127.0.0.1', port: proxy.port })
  clients.push(refused)
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException]
  expect(error.code).toBe('ECONNRESET')
  open.socket.write('still here')
  await until('the echo on the open connection', () => open.received() === 'still here')
  expect(proxy.stats()).toMatchObject({ accepted: 2, refused: 1 })

  proxy.restore()
  const fresh = await client()
  fresh.socket.write('ok')
  await until('the echo on a new connection', () => fresh.received() === 'ok')
})

test('a refused upstream resets the client', async () => {
  const c = await client()
  await proxy.close()
  const unreachable = await startFaultProxy({ upstream: { host: '127.0.0.1', port: proxy.port } })
  try {
    const socket = connect({ host: '127.0.0.1', port: unreachable.port })
    clients.push(socket)
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException]
    expect(error.code).toBe('ECONNRESET')
  } finally {
    await unreachable.close()
  }
  expect((await c.error).code).toBe('ECONNRESET') // close() reset the first proxy's connection
})
