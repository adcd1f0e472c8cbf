/**
 * PostgreSQL log sequence numbers as 64-bit integers. The text form `X/Y` is two hex numbers whose
 * padding varies between sources ("0/1A2B" vs "00000000/00001A2B"), so LSNs are never compared
 * as strings.
 */
export type Lsn = bigint

export function parseLsn(text: string): Lsn {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text)
  if (!match) throw new Error(`not an LSN: ${JSON.stringify(text)}`)
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`)
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b
}
