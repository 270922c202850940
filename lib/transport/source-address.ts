/**
 * The key under which a server counts a peer's unauthenticated connections (SPEC.md §2.4): the IPv4 address, or
 * the /64 of an IPv6 address (one subscriber's usual allocation), with an IPv4-mapped IPv6 address as its IPv4. Pure.
 */
import net from 'node:net';

const IPV4_MAPPED_PREFIX = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** The source key of `address` (as Node reports `socket.remoteAddress`); `?` for an address Node did not know. */
export function sourceAddressKey(address: string | undefined): string {
  if (address === undefined || address === '') return '?';
  const withoutZone = address.replace(/%.*$/, '');
  const mapped = IPV4_MAPPED_PREFIX.exec(withoutZone);
  if (mapped) return mapped[1]!;
  if (net.isIPv4(withoutZone)) return withoutZone;
  if (!net.isIPv6(withoutZone)) return withoutZone;
  return `${ipv6Groups(withoutZone).slice(0, 4).join(':')}::/64`;
}

// The eight 16-bit groups of an IPv6 address, as lowercase hex without leading zeros.
function ipv6Groups(address: string): string[] {
  let text = address.toLowerCase();
  // A trailing dotted quad (::1.2.3.4 forms other than the mapped one) stands for the last two groups.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, null];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === null || tail === '' ? [] : tail.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === null ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  return groups.map((group) => Number.parseInt(group, 16).toString(16));
}
