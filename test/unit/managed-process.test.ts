/**
 * A service's port can be taken between its choice and the bind: the start is retried on
 * "Address already in use" (as a broker restarted on its old port needs), and ports are chosen
 * below the ephemeral range, where no outgoing connection is given one.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { ManagedProcess } from '../services/managed-process.js'
import { freePort } from '../services/ports.js'

const dir = mkdtempSync(join(tmpdir(), 'managed-process-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Whether the service itself answers on the port (it greets with "service"), not the holder. */
const serviceAnswers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk.toString()
    })
    socket.once('close', () => resolve(text === 'service'))
    socket.once('error', () => resolve(false))
  })

test('ports are chosen below the ephemeral range', async () => {
  for (let i = 0; i < 20; i++) expect(await freePort()).toBeLessThan(32_768)
})

test('a start whose port is taken is retried until the port is free', async () => {
  const port = await freePort()
  const holder = createServer((socket) => socket.end()).listen(port, '127.0.0.1')
  await new Promise((r) => holder.once('listening', r))
  const log = join(dir, 'service.log')
  const service = new ManagedProcess({
    name: 'listener',
    command: process.execPath,
    args: [
      '-e',
      `require('node:net').createServer((s) => s.end('service')).listen(${port}, '127.0.0.1').on('error', (e) => { console.error(e.message); process.exit(1) })`,
    ],
    logFile: log,
    pidFile: join(dir, 'pid'),
    stopSignal: 'SIGTERM',
  })
  setTimeout(() => holder.close(), 1500)
  try {
    await service.startUntil(
      () => serviceAnswers(port),
      () => /address already in use/i.test(service.logTail(5)),
      20_000,
    )
    expect(service.logTail()).toMatch(/address already in use/i)
  } finally {
    await service.stop()
  }
})

test('an exit for another reason fails the start at once, with the log', async () => {
  const service = new ManagedProcess({
    name: 'broken',
    command: process.execPath,
    args: ['-e', `console.error('bad config'); process.exit(2)`],
    logFile: join(dir, 'broken.log'),
    pidFile: join(dir, 'broken.pid'),
    stopSignal: 'SIGTERM',
  })
  await expect(
    service.startUntil(
      async () => false,
      () => false,
      20_000,
    ),
  ).rejects.toThrow(/exited while starting[\s\S]*bad config/)
})
