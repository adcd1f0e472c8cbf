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

/** A broker that is a local process can also be frozen. */
export interface PausableKafka extends LocalKafka {
  /**
   * Freezes the broker (SIGSTOP): its sockets stay open and nothing answers, as with a hung
   * broker. Resolves once the kernel shows it stopped; `resume()` (SIGCONT) waits until it runs.
   */
  pause(): Promise<void>
  resume(): Promise<void>
  /** The broker process's id while it runs. */
  readonly pid: number | undefined
  /**
   * A second broker (broker only; this one stays the controller) joining the cluster, for
   * topics with two replicas. Stopping it shrinks their in-sync replicas to one.
   */
  addBroker(): Promise<{ stop(): Promise<void>; start(): Promise<void> }>
}

/**
 * How the broker's JVM is tuned. `light` (tests): the client compiler only and the serial
 * collector. The suite runs on 2 cores beside the workers it tests, and the broker's JIT and G1's
 * concurrent threads were its largest CPU cost; `light` cut the broker's CPU by ~40 % on the relay
 * and outage tests. `throughput` (benchmarks): the JVM's full JIT and G1, as production brokers run.
 */
export type KafkaJvm = 'light' | 'throughput'

const jvmFlags: Record<KafkaJvm, string[]> = {
  light: ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-XX:CICompilerCount=1'],
  throughput: ['-XX:+UseG1GC'],
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
  /** Default `light`. */
  jvm?: KafkaJvm
  /**
   * Users (name → password) of a client listener that takes SASL PLAIN logins and enforces ACLs
   * (Kafka's StandardAuthorizer). The direct listener stays open and its clients (ANONYMOUS) are
   * super users: tests create topics and ACLs through `directBrokers`.
   */
  saslUsers?: Record<string, string>
}

/** The broker settings of LocalKafkaOptions.saslUsers. */
function aclSettings(users: Record<string, string>): string[] {
  const logins = Object.entries(users).map(([name, password]) => `user_${name}="${password}"`)
  return [
    'sasl.enabled.mechanisms=PLAIN',
    `listener.name.plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${logins.join(' ')};`,
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    'super.users=User:ANONYMOUS',
  ]
}

/**
 * A throwaway single-node Kafka (KRaft, combined broker and controller) on free loopback ports,
 * in a fresh directory that is removed afterwards (also when the test run is killed).
 */
export async function startLocalKafka(options: LocalKafkaOptions = {}): Promise<PausableKafka> {
  const jars = kafkaJarsDir()
  const testJvmFlags = jvmFlags[options.jvm ?? 'light']
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
      `listener.security.protocol.map=PLAINTEXT:${options.saslUsers ? 'SASL_PLAINTEXT' : 'PLAINTEXT'},DIRECT:PLAINTEXT,CONTROLLER:PLAINTEXT`,
      ...(options.saslUsers ? aclSettings(options.saslUsers) : []),
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
  const formatStorage = (properties: string) => {
    // `--cluster-id=` form: a base64url id may begin with "-", which would otherwise parse as a flag.
    const args = ['-cp', classpath, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', properties]
    try {
      execFileSync('java', [...testJvmFlags, ...args], { stdio: 'pipe' })
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? ''
      throw new Error(`formatting Kafka storage failed:\n${stderr}`)
    }
  }
  formatStorage(config)

  const brokerProcess = (properties: string, name: string, heap: string) =>
    new ManagedProcess({
      name,
      command: 'java',
      args: [
        '-Xms256m',
        `-Xmx${heap}`,
        ...testJvmFlags,
        '-Djava.awt.headless=true',
        `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
        '-cp',
        classpath,
        'kafka.Kafka',
        properties,
      ],
      logFile: join(dir, `${name}.stdout.log`),
      pidFile: join(dir, name === 'kafka' ? 'pid' : `${name}.pid`),
      stopSignal: 'SIGTERM',
    })
  const broker = brokerProcess(config, 'kafka', '1g')
  const extra: ManagedProcess[] = []
  const disarmExtra: (() => void)[] = []
  const brokers = [`127.0.0.1:${options.advertisedPort ?? brokerPort}`]
  const directBrokers = [`127.0.0.1:${directPort}`]

  // Restarted on the same ports after an outage: they stay ours (ports.ts), and a conflict all the
  // same is retried.
  const portTaken = () => /Address already in use/.test(`${readTail(join(dir, 'kafka.log'))}\n${broker.logTail()}`)
  const start = async () => {
    try {
      // Through the direct listener, so a restart is not held up by a fault set on a proxy.
      await broker.startUntil(() => answersMetadata(directBrokers), portTaken, 60_000)
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
    get pid() {
      return broker.pid
    },
    async pause() {
      broker.pause()
      await waitUntil('the broker process stopped (SIGSTOP)', async () => processState(broker.pid) === 'T', 5000, 20)
    },
    async resume() {
      broker.resume()
      await waitUntil('the broker process running (SIGCONT)', async () => processState(broker.pid) !== 'T', 5000, 20)
    },
    async addBroker() {
      const nodeId = 2 + extra.length
      const [port, direct] = [await freePort(), await freePort()]
      const properties = join(dir, `server-${nodeId}.properties`)
      writeFileSync(
        properties,
        [
          'process.roles=broker',
          `node.id=${nodeId}`,
          `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
          `listeners=PLAINTEXT://127.0.0.1:${port},DIRECT://127.0.0.1:${direct}`,
          `advertised.listeners=PLAINTEXT://127.0.0.1:${port},DIRECT://127.0.0.1:${direct}`,
          'controller.listener.names=CONTROLLER',
          'inter.broker.listener.name=DIRECT',
          'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,DIRECT:PLAINTEXT,CONTROLLER:PLAINTEXT',
          `log.dirs=${join(dir, `data-${nodeId}`)}`,
          'num.partitions=4',
          `auto.create.topics.enable=${options.autoCreateTopics ?? true}`,
          'offsets.topic.replication.factor=1',
          'transaction.state.log.replication.factor=1',
          'transaction.state.log.min.isr=1',
          '',
        ].join('\n'),
      )
      formatStorage(properties)
      const second = brokerProcess(properties, `kafka-${nodeId}`, '512m')
      extra.push(second)
      // Killed with the test run, however it ends, like the first broker.
      disarmExtra.push(guardServiceDir(join(dir, `kafka-${nodeId}.pid`), dir))
      const registered = async () => {
        const admin = new Kafka({
          clientId: 'prisma-outbox-probe',
          brokers: directBrokers,
          logLevel: logLevel.NOTHING,
        }).admin()
        try {
          await admin.connect()
          return (await admin.describeCluster()).brokers.some((b) => b.nodeId === nodeId)
        } finally {
          await admin.disconnect().catch(() => {})
        }
      }
      const startSecond = async () => {
        second.start()
        await waitUntil(`Kafka broker ${nodeId} to join the cluster`, registered, 60_000, 250)
      }
      await startSecond()
      return { start: startSecond, stop: () => second.stop() }
    },
    async dispose() {
      broker.resume() // a stopped process would not act on SIGTERM
      for (const other of extra) await other.stop()
      await broker.stop()
      for (const disarmOne of disarmExtra) disarmOne()
      rmSync(dir, { recursive: true, force: true })
      disarm()
    },
  }
}

/** The process's state letter from /proc (T: stopped by a signal), or undefined when it is gone. */
export function processState(pid: number | undefined): string | undefined {
  if (pid === undefined) return undefined
  try {
    // "pid (comm) S ...": the command may hold spaces and parentheses, the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
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
