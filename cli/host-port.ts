/** Parses HOST:PORT arguments: a hostname, an IPv4 address, or an IPv6 address in brackets ([::1]:7447). */
import { NoiseCfgError } from '../lib/index.js';

/** A parsed address. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses `value`, naming `what` in the error. Throws INVALID_ARGUMENT. */
export function parseHostPort(value: string, what: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\s]+)):(\d{1,5})$/.exec(String(value));
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `${what} must be HOST:PORT (IPv6 as [ADDR]:PORT), got "${value}"`);
  }
  return { host: (match[1] ?? match[2])!, port };
}
