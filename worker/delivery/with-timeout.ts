/** What withTimeout rejects with when `promise` took too long (its own rejections pass as they are). */
export class TimeoutError extends Error {}

/**
 * `promise`, or a rejection after `ms` if it has not settled by then. The promise itself goes on;
 * its later rejection is handled (by the race), so nothing is reported as unhandled.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`no answer in ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
