/**
 * Small memo for pure functions of a string that every record evaluates but whose inputs repeat
 * (a topic's parts, header names): emptied when full, so odd data cannot grow it.
 */
export function memo<T>(compute: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>()
  return (key) => {
    const known = cache.get(key)
    if (known !== undefined || cache.has(key)) return known as T
    if (cache.size >= 10_000) cache.clear()
    const value = compute(key)
    cache.set(key, value)
    return value
  }
}
