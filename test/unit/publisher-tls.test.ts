/**
 * The Publisher contract over TLS (--kafka-ssl), for each client: disconnect() resolves, fails a
 * send in flight within seconds and leaves no connection open; a failing send rejects with the
 * library's own error, which classifyPublishError reads. (Node refuses resetAndDestroy on a TLS
 * socket: the fence used to throw there, so nothing was closed and every error became that one.)
 *
 * The "broker" is a TLS server that accepts and reads but never answers, i.e. a request held in
 * flight (as by a partition), or answers every request with a frame the client cannot parse.
 * No Kafka needed.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createPublisher } from '../../worker/delivery/create-publisher.js'
import { resolveConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'

let server: tls.Server
let port = 0
let caFile = ''
const open = new Set<Socket>()
let bytesReceived = 0
/** When set, every request is answered with a frame the client cannot parse (a failing request). */
let answerJunk = false

let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'publisher-tls-'))
  caFile = join(dir, 'cert.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      caFile,
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  )
  server = tls.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(caFile) }, (socket) => {
    open.add(socket)
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      bytesReceived += chunk.length
      if (!answerJunk) return
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const correlationId = pending.readInt32BE(8)
        pending = pending.subarray(4 + pending.readInt32BE(0))
        const reply = Buffer.alloc(9)
        reply.writeInt32BE(5, 0)
        reply.writeInt32BE(correlationId, 4)
        socket.write(reply)
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => open.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as { port: number }).port
})

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true })
  for (const socket of open) socket.destroy()
  await new Promise((resolve) => server.close(resolve))
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.each(['platformatic', 'kafkajs'] as const)('%s over TLS', (client) => {
  test('disconnect() while a request is in flight fences the publisher', async () => {
    const config = resolveConfig({
      databaseUrl: 'postgresql://relay@127.0.0.1/app',
      kafkaBrokers: `localhost:${port}`,
      kafkaSsl: true,
      kafkaSslCaFile: caFile,
      kafkaClient: client,
    })
    const publisher = createPublisher(config, silentLogger)
    const before = bytesReceived
    const held = publisher.send([
      { topic: 'orders', key: 'k', value: '{}', headers: { id: '1' }, timestamp: String(Date.now()) },
    ])
    let settled = false
    held.then(
      () => (settled = true),
      () => (settled = true),
    )
    // Wait until the client's first request reached the "broker" (it is now held in flight).
    for (let i = 0; i < 100 && bytesReceived === before; i++) await sleep(50)
    expect(bytesReceived).toBeGreaterThan(before)
    expect(open.size).toBeGreaterThan(0)

    const disconnected = await publisher.disconnect().then(
      () => 'resolved',
      (error: Error & { code?: string }) => `rejected: ${error.code ?? error.message}`,
    )
    // The library's own retries (3, 250 ms apart) find every connection refused: ~1.5 s.
    for (let i = 0; i < 100 && !settled; i++) await sleep(50)
    const report = { disconnected, sendSettled: settled, brokerConnectionsStillOpen: open.size }
    // The contract: disconnect resolves, the held send has settled, no connection is left open.
    expect(report).toEqual({ disconnected: 'resolved', sendSettled: true, brokerConnectionsStillOpen: 0 })
  }, 20_000)
})

describe.each(['platformatic', 'kafkajs'] as const)('%s over TLS, a failing send', (client) => {
  test('rejects with the library error (what classifyPublishError needs), not the fence error', async () => {
    answerJunk = true
    const config = resolveConfig({
      databaseUrl: 'postgresql://relay@127.0.0.1/app',
      kafkaBrokers: `localhost:${port}`,
      kafkaSsl: true,
      kafkaSslCaFile: caFile,
      kafkaClient: client,
    })
    const publisher = createPublisher(config, silentLogger)
    try {
      const error = await publisher
        .send([{ topic: 'orders', key: 'k', value: '{}', headers: { id: '1' }, timestamp: String(Date.now()) }])
        .then(
          () => undefined,
          (e: Error & { code?: string }) => e,
        )
      expect(error).toBeDefined()
      expect({ code: error?.code, message: error?.message }).not.toMatchObject({ code: 'ERR_INVALID_HANDLE_TYPE' })
    } finally {
      answerJunk = false
      await publisher.disconnect().catch(() => {})
    }
  }, 60_000)
})
