/**
 * Message mode's format: how one event travels in `pg_logical_emit_message(true, prefix, content)`.
 * The extension writes it (src/sql.ts builds the statement) and the worker reads it
 * (worker/stream/message-decoder.ts); this module is the one place that defines it.
 *
 * prefix   `prisma-outbox:<schema>.<table>`, the outbox table the app and the worker are configured
 *          with (`outbox` means `public.outbox`, as for the worker). pgoutput sends every logical
 *          message to every slot, whatever its publication: the table in the prefix is what keeps
 *          two apps (two outboxes) on one database apart.
 * content  UTF-8 text, four parts separated by "\n":
 *          1. the format version, `1`;
 *          2. a JSON array [id, aggregateType, aggregateId, type, headers, topic], the table's
 *             columns of those names in that order, headers (an object of strings) and topic
 *             null when absent; positions rather than names keep ~60 bytes per event out of the WAL;
 *          3. created_at as whole microseconds since the Unix epoch, in decimal: the transaction's
 *             now(), which is what the table's column defaults to;
 *          4. the payload, to the end: jsonb's text of it, the same bytes table mode stores and sends.
 * Parts 1–3 never contain "\n" (JSON escapes it), so the payload needs no escaping and is taken
 * byte for byte. A version the worker does not know is an error, never a guess.
 */
import type { OutboxRow } from './event.js'

export const MESSAGE_FORMAT_VERSION = 1
const PREFIX_START = 'prisma-outbox:'
const NEWLINE = 0x0a

/** The message prefix for an outbox table (`outbox` or `schema.outbox`). */
export function messagePrefix(table: string): string {
  return PREFIX_START + (table.includes('.') ? table : `public.${table}`)
}

/** The fields a message carries besides created_at and the payload. */
export interface MessageHeader {
  id: string
  aggregateType: string
  aggregateId: string
  type: string
  headers: Record<string, string> | null
  topic: string | null
}

/** Parts 1 and 2 and their separators: what the app sends; PostgreSQL appends parts 3 and 4. */
export function encodeMessageHead(row: OutboxRow): string {
  const text = JSON.stringify
  // headersJson is already JSON (validated, string values only): spliced in, not serialized twice.
  const header = `[${text(row.id)},${text(row.aggregateType)},${text(row.aggregateId)},${text(row.type)},${row.headersJson ?? 'null'},${text(row.topic)}]`
  return `${MESSAGE_FORMAT_VERSION}\n${header}\n`
}

export interface DecodedMessage extends MessageHeader {
  createdAtMicros: bigint
  /** The payload's JSON text, exactly as written. */
  payload: string
}

/** Reads a message's content; throws an Error naming what is wrong with it. */
export function decodeMessage(content: Uint8Array): DecodedMessage {
  const bytes = Buffer.from(content.buffer, content.byteOffset, content.byteLength)
  const first = bytes.indexOf(NEWLINE)
  const second = first < 0 ? -1 : bytes.indexOf(NEWLINE, first + 1)
  const third = second < 0 ? -1 : bytes.indexOf(NEWLINE, second + 1)
  if (third < 0) throw new Error('the content has fewer than four lines')
  const version = bytes.toString('utf8', 0, first)
  if (version !== String(MESSAGE_FORMAT_VERSION)) {
    throw new Error(
      `format version "${version.slice(0, 20)}" is not one this worker reads (${MESSAGE_FORMAT_VERSION}): upgrade the worker`,
    )
  }
  const header = parseHeader(bytes.toString('utf8', first + 1, second))
  const micros = bytes.toString('utf8', second + 1, third)
  if (!/^-?\d{1,19}$/.test(micros)) throw new Error(`created_at "${micros.slice(0, 30)}" is not whole microseconds`)
  return { ...header, createdAtMicros: BigInt(micros), payload: bytes.toString('utf8', third + 1) }
}

function parseHeader(text: string): MessageHeader {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error('the header line is not JSON')
  }
  if (!Array.isArray(parsed) || parsed.length !== 6) throw new Error('the header line is not a JSON array of 6')
  const [id, aggregateType, aggregateId, type, headers, topic] = parsed as unknown[]
  const texts = { id, aggregateType, aggregateId, type }
  for (const [field, value] of Object.entries(texts)) {
    if (typeof value !== 'string') throw new Error(`the header's ${field} is not a string`)
  }
  if (topic !== null && typeof topic !== 'string') throw new Error("the header's topic is neither a string nor null")
  if (headers !== null && (typeof headers !== 'object' || Array.isArray(headers)))
    throw new Error("the header's headers is neither an object nor null")
  if (headers && Object.values(headers).some((value) => typeof value !== 'string'))
    throw new Error("the header's headers has a value that is not a string")
  return {
    ...(texts as Pick<MessageHeader, 'id' | 'aggregateType' | 'aggregateId' | 'type'>),
    headers: headers as Record<string, string> | null,
    topic: topic as string | null,
  }
}
