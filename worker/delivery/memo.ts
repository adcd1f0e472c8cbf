/**
 * Small memo for pure functions of a string that every record evaluates but whose inputs repeat
 * (a topic's parts, header names): emptied when it holds `limit` entries, so odd data cannot grow
 * it past that many (what each entry may hold is the caller's to bound).
 */
export function memo<T>(compute: (key: string) => T, limit = 10_000): (key: string) => T {
  const cache = new Map<string, T>()
  return (key) => {
    const known = cache.get(key)
    if (known !== undefined || cache.has(key)) return known as T
    if (cache.size >= limit) cache.clear()
    const value = compute(key)
    cache.set(key, value)
    return value
  }
}
