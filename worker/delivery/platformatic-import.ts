import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** The one method of @platformatic/kafka's shared Ajv instance this module replaces for a moment. */
interface SchemaCompiler {
  compile(schema: unknown, meta?: boolean): ValidateFunction
}

type ValidateFunction = ((...args: unknown[]) => unknown) & { errors?: unknown }

let loading: Promise<void> | undefined

/**
 * Imports @platformatic/kafka with its option validators compiled on first use rather than at
 * import. The library compiles ~40 JSON schemas (Ajv code generation) when its modules are
 * evaluated: over half of its import's CPU (about 250 ms here) and ~20 MB. It only runs them in
 * its `strict` mode, which the worker never enables, so they are never needed. Its Ajv instance
 * lives in its utils module; evaluating that module first gives a moment, before the modules that
 * compile are evaluated, to make `compile` lazy. Every module importing '@platformatic/kafka' must
 * be imported after this has resolved. Should the library's layout change, it is imported as it is.
 */
export function loadPlatformaticKafka(): Promise<void> {
  loading ??= importWithLazySchemas()
  return loading
}

async function importWithLazySchemas(): Promise<void> {
  let ajv: SchemaCompiler | undefined
  try {
    const entry = createRequire(import.meta.url).resolve('@platformatic/kafka')
    const utils = (await import(pathToFileURL(join(dirname(entry), 'utils.js')).href)) as { ajv?: SchemaCompiler }
    if (typeof utils.ajv?.compile === 'function') ajv = utils.ajv
  } catch {
    // Another layout: no lazy schemas, the import below still works.
  }
  if (!ajv) {
    await import('@platformatic/kafka')
    return
  }
  const compileNow = ajv.compile
  ajv.compile = (schema, meta) => lazyValidator(() => compileNow.call(ajv, schema, meta))
  try {
    await import('@platformatic/kafka')
  } finally {
    // Only the library's own modules, evaluated just now, get lazy validators.
    ajv.compile = compileNow
  }
}

/** A validator that compiles its schema when first called, and shows its errors as Ajv's do. */
function lazyValidator(compile: () => ValidateFunction): ValidateFunction {
  let compiled: ValidateFunction | undefined
  const validate: ValidateFunction = function (this: unknown, ...args: unknown[]) {
    compiled ??= compile()
    const valid = compiled.apply(this, args)
    validate.errors = compiled.errors
    return valid
  }
  validate.errors = null
  return validate
}
