import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Kafka, logLevel } from 'kafkajs'
import { guardServiceDir } from './guardian.js'
import { ManagedProcess } from './managed-process.js'
import { freePort, waitUntil } from './ports.js'

const here = dirname(fileURLToPath(import.meta.url))
const pomFile = join(here, 'kafka-pom.xml')

export interface LocalKafka {
  /** What clients use: the advertised address (the proxy's, when started with `advertisedPort`). */
  brokers: string[]
  /**
   * A listener advertised at its own port, which no proxy sits in front of: for the broker's own
   * traffic, the readiness check, and test code (admin, checker) that a fault must not touch.
   */
  directBrokers: string[]
  version: string
  /** Controlled shutdown (SIGTERM); `start()` brings the same broker back with its data. */
  stop(): Promise<void>
  start(): Promise<void>
  /** Stops the broker and removes its data. */
  dispose(): Promise<void>
}

/** The Kafka version pinned in kafka-pom.xml: one place to change it. */
export function pinnedKafkaVersion(): string {
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pomFile, 'utf8'))
  if (!match?.[1]) throw new Error(`no <kafka.version> in ${pomFile}`)
  return match[1]
}

/**
 * The broker's jars, copied out of the local Maven repository by `mvn dependency:copy-dependencies`
 * (Maven downloads them from Maven Central the first time). Kept under node_modules/.cache so a
 * second run starts without Maven.
 */
export function kafkaJarsDir(): string {
  const version = pinnedKafkaVersion()
  const dir = resolve(here, `../../node_modules/.cache/prisma-outbox/kafka-${version}`)
  const marker = join(dir, '.complete')
  if (existsSync(marker)) return dir
  requireCommand('java', '-version', 'install a Java 17+ runtime (apt-get install -y openjdk-17-jre-headless)')
  requireCommand('mvn', '-v', 'install Maven (apt-get install -y maven) to fetch the Kafka jars from Maven Central')
  mkdirSync(dir, { recursive: true })
  execFileSync('mvn', ['-q', '-B', '-f', pomFile, 'dependency:copy-dependencies', `-DoutputDirectory=${dir}`], {
    // Maven's console library writes escape codes to stderr even with -q -B; its errors are in
    // the exception's message if it fails.
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  writeFileSync(marker, version)
  return dir
}

function requireCommand(command: string, versionFlag: string, fix: string): void {
  try {
    execFileSync(command, [versionFlag], { stdio: 'ignore' })
  } catch {
    throw new Error(`\`${command}\` is not available: ${fix}, or set KAFKA_BROKERS to a running broker.`)
  }
}

export interface LocalKafkaOptions {
  /** The client listener's port. Default: a free port. */
  port?: number
  /**
   * The port the client listener is advertised at in metadata, which is where clients connect
   * after the bootstrap: a fault proxy's port, so that all client traffic crosses the proxy.
   * Default: `port`.
   */
  advertisedPort?: number
  /** `auto.create.topics.enable`. Default true; production usually has it off. */
  autoCreateTopics?: boolean
}

/**
 * A throwaway single-node Kafka (KRaft, combined broker and controller) on free loopback ports,
 * in a fresh directory that is removed afterwards (also when the test run is killed).
 */
export async function startLocalKafka(options: LocalKafkaOptions = {}): Promise<LocalKafka> {
  const jars = kafkaJarsDir()
  const dir = mkdtempSync('/tmp/prisma-outbox-kafka-')
  const disarm = guardServiceDir(join(dir, 'pid'), dir)
  const brokerPort = options.port ?? (await freePort())
  const [directPort, controllerPort] = [await freePort(), await freePort()]
  const config = join(dir, 'server.properties')
  writeFileSync(
    config,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${brokerPort},DIRECT://127.0.0.1:${directPort},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${options.advertisedPort ?? brokerPort},DIRECT://127.0.0.1:${directPort}`,
      'controller.listener.names=CONTROLLER',
      // The broker's own requests (e.g. transaction markers to itself) must not cross a fault proxy.
      'inter.broker.listener.name=DIRECT',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,DIRECT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${join(dir, 'data')}`,
      // Several partitions per auto-created topic, so per-key ordering is actually exercised.
      'num.partitions=4',
      `auto.create.topics.enable=${options.autoCreateTopics ?? true}`,
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=4',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'log.flush.interval.messages=9223372036854775807',
      '',
    ].join('\n'),
  )
  writeFileSync(
    join(dir, 'log4j.properties'),
    [
      'log4j.rootLogger=WARN, file',
      'log4j.logger.kafka=INFO',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${join(dir, 'kafka.log')}`,
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
      '',
    ].join('\n'),
  )
  const classpath = `${jars}/*`
  const clusterId = randomBytes(16).toString('base64url')
  // `--cluster-id=` form: a base64url id may begin with "-", which would otherwise parse as a flag.
  try {
    execFileSync(
      'java',
      ['-cp', classpath, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', config],
      {
        stdio: 'pipe',
      },
    )
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? ''
    throw new Error(`formatting Kafka storage failed:\n${stderr}`)
  }

  const broker = new ManagedProcess({
    name: 'kafka',
    command: 'java',
    args: [
      '-Xms256m',
      '-Xmx1g',
      '-XX:+UseG1GC',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
      '-cp',
      classpath,
      'kafka.Kafka',
      config,
    ],
    logFile: join(dir, 'stdout.log'),
    pidFile: join(dir, 'pid'),
    stopSignal: 'SIGTERM',
  })
  const brokers = [`127.0.0.1:${options.advertisedPort ?? brokerPort}`]
  const directBrokers = [`127.0.0.1:${directPort}`]

  const start = async () => {
    broker.start()
    try {
      // Through the direct listener, so a restart is not held up by a fault set on a proxy.
      await waitUntil('Kafka to answer a metadata request', () => answersMetadata(directBrokers), 60_000, 250)
    } catch (error) {
      const log = readTail(join(dir, 'kafka.log'))
      throw new Error(`${(error as Error).message}\n--- kafka.log ---\n${log}\n--- stdout ---\n${broker.logTail()}`)
    }
  }
  await start()

  return {
    brokers,
    directBrokers,
    version: pinnedKafkaVersion(),
    start,
    stop: () => broker.stop(),
    async dispose() {
      await broker.stop()
      rmSync(dir, { recursive: true, force: true })
      disarm()
    },
  }
}

/** True once the broker answers metadata with itself as a live broker. */
export async function answersMetadata(brokers: string[]): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'prisma-outbox-probe',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1000,
  }).admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    return cluster.brokers.length > 0
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

function readTail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}
