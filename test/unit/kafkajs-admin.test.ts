import type { Admin } from 'kafkajs'
import { describe, expect, test } from 'vitest'
import { LazyAdmin } from '../../worker/delivery/kafkajs-admin.js'

/** Admin clients whose connect fails while `down` is set; each records what was asked of it. */
function fakeKafka() {
  const state = { down: true, made: [] as { connected: boolean; disconnected: boolean }[] }
  const kafka = {
    admin: () => {
      const made = { connected: false, disconnected: false }
      state.made.push(made)
      return {
        connect: async () => {
          if (state.down) throw new Error('connect ECONNREFUSED')
          made.connected = true
        },
        disconnect: async () => {
          made.disconnected = true
        },
        listTopics: async () => {
          // kafkajs would send a metadata request through a client that never connected.
          if (!made.connected) throw new Error('asked through an admin that never connected')
          return ['orders']
        },
      } as unknown as Admin
    },
  }
  return { kafka, state }
}

describe('LazyAdmin', () => {
  test('an admin whose connect failed is dropped: the next call connects a new one', async () => {
    const { kafka, state } = fakeKafka()
    const admin = new LazyAdmin(kafka)
    await expect(admin.unavailable(['orders', 'payments'])).rejects.toThrow('ECONNREFUSED')
    expect(state.made).toEqual([{ connected: false, disconnected: true }])
    state.down = false
    await expect(admin.unavailable(['orders', 'payments'])).resolves.toEqual(['payments'])
    expect(state.made).toHaveLength(2)
  })

  test('callers waiting together share one connect; disconnect forgets the client', async () => {
    const { kafka, state } = fakeKafka()
    state.down = false
    const admin = new LazyAdmin(kafka)
    const [a, b] = await Promise.all([admin.connected(), admin.connected()])
    expect(a).toBe(b)
    expect(state.made).toHaveLength(1)
    await admin.disconnect()
    expect(state.made[0]?.disconnected).toBe(true)
    await admin.connected()
    expect(state.made).toHaveLength(2)
  })
})
