/**
 * `npm run services`: the test services for a person. Starts them, prints the variables to paste
 * into another terminal, and stops and removes everything on Ctrl-C.
 */
import { startServices } from './index.js'

const started = Date.now()
process.stderr.write('starting PostgreSQL and Kafka...\n')
const services = await startServices((line) => process.stderr.write(`${line}\n`))
process.stderr.write(
  `ready in ${((Date.now() - started) / 1000).toFixed(1)} s (PostgreSQL ${services.postgresVersion}, Kafka ${services.kafkaVersion}, ${services.source})\n\n`,
)
process.stdout.write(
  `export DATABASE_URL=${services.databaseUrl}\nexport KAFKA_BROKERS=${services.kafkaBrokers.join(',')}\n\n`,
)
process.stderr.write('Ctrl-C stops them and removes their data.\n')

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  process.stderr.write('\nstopping...\n')
  await services.dispose()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
setInterval(() => {}, 1 << 30)
