/**
 * The part of a Prisma promise the client's batch `$transaction([...])` relies on: it accepts an
 * element only if it is tagged `PrismaPromise`, and asks it to join the batch through
 * `requestTransaction`. A plain `.then()` would lose both, so emit could not be batched.
 */
export interface PrismaPromiseLike<T> extends Promise<T> {
  readonly [Symbol.toStringTag]: 'PrismaPromise'
  requestTransaction?(transaction: unknown): PromiseLike<unknown>
}

/**
 * A Prisma promise that resolves to `map(result)` of `inner` (or rejects with `mapError(error)`), and still works as an element of
 * `prisma.$transaction([...])`. Lazy like Prisma's own: nothing runs until awaited or batched.
 */
export function mapPrismaPromise<T, U>(
  inner: PrismaPromiseLike<T>,
  map: (result: T) => U,
  mapError: (error: unknown) => unknown = (error) => error,
): PrismaPromiseLike<U> {
  let started: Promise<U> | undefined
  const fail = (error: unknown): never => {
    throw mapError(error)
  }
  const run = () => {
    if (!started) {
      started = Promise.resolve(inner).then(map, fail)
      // Whoever awaits gets the rejection; a branch Prisma drops must not make it "unhandled".
      started.catch(() => {})
    }
    return started
  }
  return {
    // biome-ignore lint/suspicious/noThenProperty: a Prisma promise is a thenable by contract.
    then: (onFulfilled, onRejected) => run().then(onFulfilled, onRejected),
    catch: (onRejected) => run().catch(onRejected),
    finally: (onFinally) => run().finally(onFinally),
    requestTransaction(transaction: unknown) {
      const joined = inner.requestTransaction ? inner.requestTransaction(transaction) : inner
      const mapped = Promise.resolve(joined).then((result) => map(result as T), fail)
      // The batch reports a failure through $transaction([...]); this element's own rejection
      // must not also surface as unhandled when Prisma stops listening after the first one.
      mapped.catch(() => {})
      return mapped
    },
    [Symbol.toStringTag]: 'PrismaPromise',
  } as PrismaPromiseLike<U>
}

/**
 * A Prisma promise that fails with `error`: awaiting it rejects, and offering it to a batch
 * `$transaction([...])` throws while the batch is being assembled, so none of it is sent.
 */
export function rejectedPrismaPromise<T>(error: unknown): PrismaPromiseLike<T> {
  const rejected = Promise.reject(error)
  rejected.catch(() => {}) // rejection is reported to whoever awaits, not as unhandled
  return {
    // biome-ignore lint/suspicious/noThenProperty: a Prisma promise is a thenable by contract.
    then: (onFulfilled, onRejected) => rejected.then(onFulfilled, onRejected),
    catch: (onRejected) => rejected.catch(onRejected),
    finally: (onFinally) => rejected.finally(onFinally),
    // Throwing here (rather than returning the rejection) keeps Prisma from waiting forever for
    // this element to join the batch; the whole $transaction([...]) call fails at once instead.
    requestTransaction() {
      throw error
    },
    [Symbol.toStringTag]: 'PrismaPromise',
  } as PrismaPromiseLike<T>
}
