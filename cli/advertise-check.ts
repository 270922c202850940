/**
 * The check of `--advertise HOST:PORT` before anything is written into a token (SPEC.md §4.3): every client of the
 * task will connect there, so an address nobody can reach is refused at once, and one that is not this host's is
 * said (it is right behind NAT or a load balancer, and a typo otherwise).
 */
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { NoiseCfgError } from '../lib/index.js';
import type { HostPort } from './host-port.js';

/** How long a name may take to resolve before the check gives up, in milliseconds. */
const ADVERTISE_LOOKUP_TIMEOUT_MS = 5_000;

/** This host's interface addresses, in the spelling `os.networkInterfaces()` gives (IPv6 without a zone). */
function hostAddresses(): Set<string> {
  const addresses = new Set<string>();
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) addresses.add(entry.address.replace(/%.*$/, '').toLowerCase());
  }
  return addresses;
}

async function resolves(host: string): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('no answer within 5 s'), ADVERTISE_LOOKUP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([lookup(host, { all: true }).then(() => null), timeout]);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Throws INVALID_ARGUMENT when clients could never connect to `advertise` (port 0, an unspecified address, a name
 * that does not resolve here); returns a warning line when it is an address of no interface of this host, else null.
 */
export async function checkAdvertise(advertise: HostPort, what = '--advertise'): Promise<string | null> {
  const shown = `${advertise.host.includes(':') ? `[${advertise.host}]` : advertise.host}:${advertise.port}`;
  if (advertise.port === 0) throw new NoiseCfgError('INVALID_ARGUMENT', `${what} ${shown}: port 0 is not a port a client can connect to; give the port the server listens on`);
  const version = isIP(advertise.host);
  if (version === 0) {
    const failure = await resolves(advertise.host);
    if (failure !== null) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `${what} ${shown}: ${advertise.host} does not resolve here (${failure}); clients connect to this name, so check its spelling and DNS`);
    }
    return null;
  }
  if (advertise.host === '0.0.0.0' || advertise.host === '::' || /^(0+:){7}0+$/.test(advertise.host)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `${what} ${shown}: a client cannot connect to the unspecified address; give an address or name of this host that clients reach`);
  }
  if (hostAddresses().has(advertise.host.toLowerCase())) return null;
  return `warning: ${what} ${shown} is not an address of this host; tokens send every client there (right behind NAT or a load balancer, otherwise check it)`;
}
