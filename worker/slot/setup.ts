import type pg from 'pg'
import { OutboxSetupError } from '../operations/errors.js'
import {
  publicationProblem,
  readPublicationFacts,
  readServerFacts,
  serverProblems,
  slotPluginProblem,
} from './checks.js'
import { readSlot } from './slot-state.js'

/**
 * Everything the stream needs from the server, checked before streaming so each problem gets
 * its own message and fix instead of a replication error: version, wal_level, the REPLICATION
 * attribute, the publication and its table, the slot's plugin. The slot's state is slot-state.ts's.
 */
export async function prepareDatabase(
  client: pg.Client,
  options: { slot: string; publication: string; table: string },
): Promise<void> {
  const problem =
    serverProblems(await readServerFacts(client))[0] ??
    publicationProblem(await readPublicationFacts(client, options), options) ??
    slotPluginProblem(options.slot, await readSlot(client, options.slot))
  if (problem) throw new OutboxSetupError(problem.message, { code: problem.code })
}
