import { expect, test } from 'vitest'
import { whenLoaded } from '../../worker/delivery/create-publisher.js'

interface Greeter {
  greet(name: string): Promise<string>
  optional?(): Promise<number>
}

test("a client imported later: each call waits for it and reaches the loaded object's method, with its arguments", async () => {
  let load: (greeter: Greeter) => void = () => {}
  const greeter = whenLoaded<Greeter>(new Promise((resolve) => (load = resolve)), { greet: true, optional: true })
  const answer = greeter.greet('kafka')
  load({
    prefix: 'hello',
    async greet(this: { prefix: string }, name: string) {
      return `${this.prefix} ${name}`
    },
    optional: async () => 7,
  } as Greeter)
  expect(await answer).toBe('hello kafka')
  expect(await greeter.optional?.()).toBe(7)
})

test('a failed import is no unhandled rejection: the first call reports it', async () => {
  const greeter = whenLoaded<Greeter>(Promise.reject(new Error('Cannot find module kafkajs')), {
    greet: true,
    optional: true,
  })
  await new Promise((resolve) => setTimeout(resolve, 10))
  await expect(greeter.greet('x')).rejects.toThrow('Cannot find module kafkajs')
})
