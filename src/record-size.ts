/**
 * Bytes Kafka counts for a record, near enough to compare with its message size limit: key,
 * value, headers, and a fixed allowance for the record's framing. One definition for both
 * sides: `emit` refuses what the worker would dead-letter as too large, and nothing else.
 */
export function recordBytes(key: string, valueBytes: number, headers: Record<string, string>): number {
  let bytes = Buffer.byteLength(key) + valueBytes + 64
  // for…in rather than Object.entries: the worker measures every record, and entries allocates.
  for (const name in headers) {
    if (Object.hasOwn(headers, name)) bytes += Buffer.byteLength(name) + Buffer.byteLength(headers[name] as string) + 8
  }
  return bytes
}
