import { OutboxValidationError } from './errors.js'

export type JsonPrimitive = string | number | boolean | null
/** Any value JSON can carry. Objects with a `toJSON` method (Date, Prisma's Decimal) are accepted too. */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue } | { toJSON(): unknown }

/**
 * `T` where every part is something JSON carries, `never` where it is not (functions, BigInt,
 * symbols, `undefined` in arrays, Map and Set). A mapped type, unlike JsonValue's index
 * signature, also accepts payloads typed with an `interface`. Optional properties are accepted
 * (an absent key is fine); an explicit `undefined` value is refused when emitted.
 */
export type JsonSafe<T> = T extends JsonValue
  ? T
  : T extends { toJSON(): unknown }
    ? T
    : T extends bigint | symbol | undefined | ((...args: never[]) => unknown)
      ? never
      : T extends object
        ? { [K in keyof T]: JsonSafe<T[K]> }
        : never

/** A string PostgreSQL can store: no NUL (text and jsonb refuse it), no lone surrogate. */
export function checkText(value: string, field: string, what = ''): void {
  if (value.includes('\0')) {
    throw new OutboxValidationError(
      field,
      `${what}contains a NUL character (\\u0000), which PostgreSQL cannot store`,
      'remove it (or encode binary data, e.g. as base64)',
    )
  }
  // A lone surrogate (half of a UTF-16 pair) is not text; PostgreSQL refuses it in JSON, and
  // the driver would turn it into U+FFFD in a text column.
  if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new OutboxValidationError(
      field,
      `${what}contains half of a UTF-16 surrogate pair (a lone surrogate), which is not valid Unicode`,
      'pass well-formed text (a string cut in the middle of an emoji is the usual cause)',
    )
  }
}

/**
 * Checks that JSON carries `value` unchanged, and returns the byte length of its text as
 * PostgreSQL's jsonb prints it, which is what the worker sends to Kafka and measures: `", "` and
 * `": "` as separators, numbers without exponents (`1e21` prints 22 digits). Strings and keys
 * print as JSON.stringify writes them.
 *
 * Rejects what JSON.stringify would drop, alter or choke on: undefined, functions, symbols,
 * BigInt, NaN and Infinity, invalid Dates, cycles, text PostgreSQL cannot store, and objects that
 * serialize to `{}` (Map, Set, class instances) unless they define toJSON (Date, Decimal), whose
 * result is checked in turn.
 */
export function checkJson(value: unknown, path: string, seen = new Set<object>(), viaToJson = false): number {
  switch (typeof value) {
    case 'string':
      checkText(value, path)
      return jsonStringBytes(value)
    case 'boolean':
      return value ? 4 : 5
    case 'number':
      if (!Number.isFinite(value))
        throw new OutboxValidationError(path, `is ${value}`, 'JSON has no NaN or Infinity: use null or a string')
      return jsonbNumberText(value).length
    case 'bigint':
      throw new OutboxValidationError(path, 'is a BigInt', 'convert it to a string (or a number if it is safe)')
    case 'undefined':
      throw new OutboxValidationError(path, 'is undefined, which JSON drops silently', 'use null or leave the key out')
    case 'function':
    case 'symbol':
      throw new OutboxValidationError(path, `is a ${typeof value}`, 'payloads carry data only')
  }
  if (value === null) return 4
  const object = value as object
  if (seen.has(object))
    throw new OutboxValidationError(path, 'refers back to itself (a cycle)', 'send a tree, not a graph')
  seen.add(object)
  let bytes: number
  if (object instanceof Date && Number.isNaN(object.getTime())) {
    throw new OutboxValidationError(path, 'is an invalid Date, which JSON turns into null', 'pass a valid Date or null')
  } else if (!viaToJson && typeof (object as { toJSON?: unknown }).toJSON === 'function') {
    // JSON.stringify calls toJSON once, then serializes what it returns as is.
    bytes = checkJson((object as { toJSON(): unknown }).toJSON(), path, seen, true)
  } else if (Array.isArray(object)) {
    bytes = 2 + Math.max(0, object.length - 1) * 2 // [ ] and ", "
    for (let index = 0; index < object.length; index++) bytes += checkJson(object[index], `${path}[${index}]`, seen)
  } else {
    const proto = Object.getPrototypeOf(object)
    if (proto !== Object.prototype && proto !== null) {
      const kind = proto?.constructor?.name ?? 'object'
      throw new OutboxValidationError(
        path,
        `is a ${kind}, which JSON turns into {}`,
        'convert it to a plain object or array',
      )
    }
    const entries = Object.entries(object)
    bytes = 2 + Math.max(0, entries.length - 1) * 2 // { } and ", "
    for (const [key, item] of entries) {
      checkText(key, path, `has a key "${key.replace(/\0/g, '\\u0000')}" that `)
      bytes += jsonStringBytes(key) + 2 + checkJson(item, `${path}.${key}`, seen) // ": "
    }
  }
  seen.delete(object)
  return bytes
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON escapes exactly these control characters.
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/

/** Bytes of a string as JSON text (PostgreSQL escapes exactly what JSON.stringify escapes). */
function jsonStringBytes(value: string): number {
  if (!NEEDS_ESCAPE.test(value)) return Buffer.byteLength(value) + 2
  return Buffer.byteLength(JSON.stringify(value))
}

/**
 * A finite number as jsonb prints it: PostgreSQL's numeric keeps every digit and never uses an
 * exponent, so JSON.stringify's `1e+21` prints as 1 and 21 zeros, and `1.5e-7` as 0.00000015.
 */
export function jsonbNumberText(value: number): string {
  const text = String(value)
  if (!text.includes('e')) return text
  const match = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text)
  if (!match) return text
  const [, sign, whole = '', fraction = '', exponentText = '0'] = match
  const digits = whole + fraction
  const point = whole.length + Number(exponentText) // where the decimal point goes in `digits`
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
}
