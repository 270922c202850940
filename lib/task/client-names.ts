/** How an operator names a client of a task (SPEC.md §8 `task revoke`): what logs and watch show, or its name. */
import { NoiseCfgError } from '../errors.js';
import { escapeUnprintable } from './printable.js';
import type { ClientRecord } from './store.js';

/** The fewest hex characters of an identity `task revoke` accepts as a prefix (logs and watch show 16). */
export const MIN_IDENTITY_PREFIX_LENGTH = 8;

/**
 * The client `given` names: its identity, a unique prefix of it of at least MIN_IDENTITY_PREFIX_LENGTH hex
 * characters, or its name when no other client has it. Throws INVALID_ARGUMENT (ambiguous or too short) or
 * CLIENT_NOT_FOUND.
 */
export function resolveClient(clients: readonly ClientRecord[], taskId: string, given: string): ClientRecord {
  const exact = clients.find((client) => client.identity === given);
  if (exact) return exact;
  const describe = (matches: readonly ClientRecord[]): string => matches.slice(0, 5).map((client) => `${client.identity.slice(0, 16)} (${escapeUnprintable(client.name) || 'no name'})`).join(', ');
  if (/^[0-9a-f]+$/i.test(given)) {
    const matches = clients.filter((client) => client.identity.startsWith(given.toLowerCase()));
    if (matches.length > 0 && given.length < MIN_IDENTITY_PREFIX_LENGTH) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `give at least ${MIN_IDENTITY_PREFIX_LENGTH} hex characters of the identity (got ${given.length})`);
    }
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new NoiseCfgError('INVALID_ARGUMENT', `${given} is the start of ${matches.length} identities in task ${taskId}: ${describe(matches)}; give more characters`);
  }
  const named = clients.filter((client) => client.name === given);
  if (named.length === 1) return named[0]!;
  if (named.length > 1) throw new NoiseCfgError('INVALID_ARGUMENT', `${named.length} clients of task ${taskId} are named ${JSON.stringify(given)}: ${describe(named)}; give the identity`);
  throw new NoiseCfgError('CLIENT_NOT_FOUND', `task ${taskId} has no client with identity, identity prefix or name ${JSON.stringify(given)}`);
}
