/**
 * Whether a listen address stays on this machine (SPEC.md §8): the REST API hands out tokens, so `serve` binds it
 * off loopback only when asked. A name is judged by what it resolves to, never by how it is spelt
 * (`127.example.net` can resolve anywhere).
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { NoiseCfgError } from '../lib/index.js';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for 127.0.0.0/8 and ::1, in any spelling, IPv4-mapped ones (::ffff:127.0.0.1) included. */
export function isLoopbackAddress(address: string): boolean {
  const version = isIP(address);
  return version !== 0 && LOOPBACK.check(address, version === 4 ? 'ipv4' : 'ipv6');
}

/**
 * True when `host` (an address or a name) is loopback: a name counts only when every address it resolves to is.
 * Throws INVALID_ARGUMENT naming `what` when the name does not resolve.
 */
export async function isLoopbackHost(host: string, what: string): Promise<boolean> {
  if (isIP(host) !== 0) return isLoopbackAddress(host);
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true });
  } catch (error) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `${what}: cannot resolve ${host} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  return addresses.length > 0 && addresses.every((entry) => isLoopbackAddress(entry.address));
}
