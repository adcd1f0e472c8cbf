/**
 * @platformatic/kafka imported with lazily compiled option schemas still validates as the library
 * does when asked to (strict mode), and leaves its Ajv instance compiling as before.
 */
import { describe, expect, test } from 'vitest'
import { loadPlatformaticKafka } from '../../worker/delivery/platformatic-import.js'

describe('loadPlatformaticKafka', () => {
  test('strict clients still refuse invalid options, and accept valid ones', async () => {
    await loadPlatformaticKafka()
    const { Producer, UserError } = await import('@platformatic/kafka')
    const options = { clientId: 'lazy-schemas', bootstrapBrokers: ['127.0.0.1:1'], strict: true }
    expect(() => new Producer({ ...options, retries: 'often' as unknown as number })).toThrow(UserError)
    expect(() => new Producer({ ...options, retries: 'often' as unknown as number })).toThrow(/retries/)
    const producer = new Producer(options)
    await producer.close()
  })

  test('the library’s Ajv compiles at once again after the import', async () => {
    await loadPlatformaticKafka()
    const { ajv } = (await import('@platformatic/kafka')) as unknown as {
      ajv: { compile(schema: unknown): ((data: unknown) => boolean) & { errors?: unknown } }
    }
    const validate = ajv.compile({ type: 'string' })
    expect(validate(1)).toBe(false)
    expect(validate.errors).toBeTruthy()
    expect(() => ajv.compile({ type: 'no such type' })).toThrow()
  })
})
