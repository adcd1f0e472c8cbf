/**
 * How the tests choose their services (the environment's, else containers, else local processes;
 * OUTBOX_TEST_SERVICES forces one), without starting any: a
 * Docker that answers but cannot pull, or a DOCKER_HOST that points nowhere, must cost one line
 * and a fallback to local processes, or a clear error when containers were asked for.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, expect, test, vi } from 'vitest'
import { chosenServices, containersOrWhyNot, startServices } from '../services/index.js'
import { freePort } from '../services/ports.js'

const registryError = 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host'

// Answers like a Docker daemon with no route to its registry: it runs, has no images, cannot pull.
let daemon: Server
let dir: string
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'prisma-outbox-fake-docker-'))
  daemon = createServer((req, res) => {
    const path = (req.url ?? '').replace(/^\/v[\d.]+/, '').split('?')[0]
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (path === '/_ping') return res.end('OK')
    if (path === '/info') return reply(200, { ServerVersion: 'fake', OperatingSystem: 'fake', OSType: 'linux' })
    if (path === '/containers/json') return reply(200, [])
    // testcontainers asks for this when it runs inside a container itself
    if (path === '/networks/bridge') return reply(200, { IPAM: { Config: [{ Gateway: '127.0.0.1' }] } })
    if (path === '/images/create') return reply(500, { message: registryError })
    reply(404, { message: `no such thing: ${path}` })
  })
  await new Promise<void>((resolve) => daemon.listen(join(dir, 'docker.sock'), resolve))
})
afterAll(async () => {
  await new Promise((resolve) => daemon.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})
afterEach(() => {
  vi.unstubAllEnvs()
})

test('OUTBOX_TEST_SERVICES accepts containers, local and env, and names the choices otherwise', () => {
  vi.stubEnv('OUTBOX_TEST_SERVICES', '')
  expect(chosenServices()).toBeUndefined()
  for (const value of ['containers', 'local', 'env']) {
    vi.stubEnv('OUTBOX_TEST_SERVICES', value)
    expect(chosenServices()).toBe(value)
  }
  vi.stubEnv('OUTBOX_TEST_SERVICES', 'docker')
  expect(() => chosenServices()).toThrow(
    'OUTBOX_TEST_SERVICES=docker is not one of containers, local, env (or leave it unset to let the tests choose)',
  )
})

test('OUTBOX_TEST_SERVICES=env without both variables says which are needed', async () => {
  vi.stubEnv('OUTBOX_TEST_SERVICES', 'env')
  vi.stubEnv('DATABASE_URL', 'postgresql://localhost/postgres')
  vi.stubEnv('KAFKA_BROKERS', '')
  await expect(startServices()).rejects.toThrow(
    'OUTBOX_TEST_SERVICES=env needs both DATABASE_URL and KAFKA_BROKERS (`npm run services` prints them), or leave OUTBOX_TEST_SERVICES unset to let the tests start their own',
  )
})

test('a DOCKER_HOST that points nowhere: one line, then local processes (not the default socket)', async () => {
  const port = await freePort()
  for (const dockerHost of [`unix://${join(dir, 'nothing.sock')}`, `tcp://127.0.0.1:${port}`]) {
    vi.stubEnv('DOCKER_HOST', dockerHost)
    const lines: string[] = []
    expect(await containersOrWhyNot(false, (line) => lines.push(line))).toBeUndefined()
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(
        `^services: containers unavailable: DOCKER_HOST=${dockerHost} does not answer \\(.*(ENOENT|ECONNREFUSED).*\\); starting local PostgreSQL and Kafka processes instead$`,
      ),
    )
  }
})

test('OUTBOX_TEST_SERVICES=containers with a DOCKER_HOST that points nowhere is an error that says what to do', async () => {
  vi.stubEnv('DOCKER_HOST', 'tcp://127.0.0.1:1')
  vi.stubEnv('OUTBOX_TEST_POSTGRES_IMAGE', '')
  await expect(containersOrWhyNot(true, () => {})).rejects.toThrow(
    /^OUTBOX_TEST_SERVICES=containers, but containers cannot start: DOCKER_HOST=tcp:\/\/127\.0\.0\.1:1 does not answer \(.*ECONNREFUSED.*\)\. Start a container runtime that can pull postgres:17 and apache\/kafka:[\d.]+, or set OUTBOX_TEST_POSTGRES_IMAGE and OUTBOX_TEST_KAFKA_IMAGE to images it has, or set OUTBOX_TEST_SERVICES=local to use local processes$/,
  )
})

// testcontainers reads DOCKER_HOST once per process: the tests above stop before reaching it.
test('a runtime that answers but cannot pull: one line with the daemon’s reason, then local processes', async () => {
  vi.stubEnv('DOCKER_HOST', `unix://${join(dir, 'docker.sock')}`)
  vi.stubEnv('TESTCONTAINERS_RYUK_DISABLED', '')
  const lines: string[] = []
  expect(await containersOrWhyNot(false, (line) => lines.push(line))).toBeUndefined()
  expect(lines).toEqual([
    `services: containers unavailable: the testcontainers reaper (Ryuk) could not start: (HTTP code 500) server error - ${registryError}; starting local PostgreSQL and Kafka processes instead`,
  ])

  // Without the reaper, the first image is what fails to pull; the error names it.
  vi.stubEnv('TESTCONTAINERS_RYUK_DISABLED', 'true')
  vi.stubEnv('OUTBOX_TEST_POSTGRES_IMAGE', 'postgres:17')
  await expect(containersOrWhyNot(true, () => {})).rejects.toThrow(
    `OUTBOX_TEST_SERVICES=containers, but containers cannot start: postgres:17 could not start: (HTTP code 500) server error - ${registryError}. Start a container runtime`,
  )
})
