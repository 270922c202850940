/** Section 1, the limit: libsodium through sodium-native, and the key-exchange ceiling per handshake side. */
import sodium from 'sodium-native';
import { generateKeyPair } from '../lib/index.js';
import { CHACHAPOLY_BACKENDS, findCipherFunction } from '../lib/noise/cipher-functions.js';
import { figure, type Figure } from './stats.js';

/** Operations per second of `operation`, timed over about `budgetMs` (at least 1 ms). */
export function rate(operation: () => void, budgetMs: number): number {
  let count = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.max(1, Math.round(budgetMs))) * 1_000_000n;
  let now = started;
  while (now < deadline) {
    for (let i = 0; i < 50; i++) operation();
    count += 50;
    now = process.hrtime.bigint();
  }
  return count / (Number(now - started) / 1e9);
}

export interface PrimitiveFigures {
  dhPerSecond: Figure;
  keypairPerSecond: Figure;
  /** The core's ChaChaPoly (the backend it picks for the size), in place: the channel's AEAD limit. */
  chachaMBps64k: Figure;
  chachaMBps1k: Figure;
  blake2bMBps: Figure;
  /** keypair + 3 DH per side. */
  xxpsk3CeilingPerSecond: Figure;
  /** keypair + 1 DH per side. */
  nnpsk0CeilingPerSecond: Figure;
}

/** Measures each primitive `runs` times, interleaved. */
export function measurePrimitives(runs: number, budgetMs: number): PrimitiveFigures {
  const keys = generateKeyPair();
  const other = generateKeyPair();
  const shared = Buffer.alloc(32);
  const key = Buffer.alloc(32, 1);
  const chachaPoly = findCipherFunction('ChaChaPoly');
  // A record's largest plaintext: 65535 minus the tag and the record's type byte.
  const big = Buffer.alloc(65535 - 16 - 1, 2);
  const bigOut = Buffer.alloc(big.byteLength + 16);
  const small = Buffer.alloc(1024, 3);
  const smallOut = Buffer.alloc(small.byteLength + 16);
  const digest = Buffer.alloc(64);
  const values: Record<keyof PrimitiveFigures, number[]> = {
    dhPerSecond: [], keypairPerSecond: [], chachaMBps64k: [], chachaMBps1k: [], blake2bMBps: [], xxpsk3CeilingPerSecond: [], nnpsk0CeilingPerSecond: [],
  };
  for (let run = 0; run < runs; run++) {
    const dh = rate(() => sodium.crypto_scalarmult(shared, keys.secretKey, other.publicKey), budgetMs);
    const keypair = rate(() => generateKeyPair(), budgetMs);
    values.dhPerSecond.push(dh);
    values.keypairPerSecond.push(keypair);
    values.chachaMBps64k.push((rate(() => chachaPoly.encrypt(key, 0, 0, EMPTY, big, bigOut), budgetMs) * big.byteLength) / 1e6);
    values.chachaMBps1k.push((rate(() => chachaPoly.encrypt(key, 0, 0, EMPTY, small, smallOut), budgetMs) * small.byteLength) / 1e6);
    values.blake2bMBps.push((rate(() => sodium.crypto_generichash(digest, big), budgetMs) * big.byteLength) / 1e6);
    values.xxpsk3CeilingPerSecond.push(1 / (1 / keypair + 3 / dh));
    values.nnpsk0CeilingPerSecond.push(1 / (1 / keypair + 1 / dh));
  }
  return Object.fromEntries(Object.entries(values).map(([name, list]) => [name, figure(list)])) as unknown as PrimitiveFigures;
}

/** The ceiling of one handshake side for a protocol, per second, from fresh measurements (for paired ratios). */
export function ceilingNow(protocol: 'xxpsk3' | 'nnpsk0', budgetMs: number): number {
  const keys = generateKeyPair();
  const other = generateKeyPair();
  const shared = Buffer.alloc(32);
  const dh = rate(() => sodium.crypto_scalarmult(shared, keys.secretKey, other.publicKey), budgetMs);
  const keypair = rate(() => generateKeyPair(), budgetMs);
  return 1 / (1 / keypair + (protocol === 'xxpsk3' ? 3 : 1) / dh);
}

const EMPTY = Buffer.alloc(0);
/** Plaintext sizes at which the two ChaChaPoly backends are compared. */
export const CROSSOVER_SIZES = [1024, 4096, 8192, 16384, 32768, 65518] as const;

export interface CipherCrossover {
  /** Seal MB/s per size, libsodium and OpenSSL, measured interleaved. */
  bySize: { bytes: number; libsodiumMBps: number; opensslMBps: number }[];
  /** The smallest size from which OpenSSL was faster at every larger size measured; null when it never was. */
  measuredCrossoverBytes: number | null;

}

/** libsodium against OpenSSL for ChaChaPoly seal at each of CROSSOVER_SIZES, `runs` interleaved rounds. */
export function measureCipherCrossover(runs: number, budgetMs: number): CipherCrossover {
  const key = Buffer.alloc(32, 1);
  const bySize = CROSSOVER_SIZES.map((bytes) => {
    const buffer = Buffer.alloc(bytes + 16, 4);
    const plaintext = buffer.subarray(0, bytes);
    const rates = { libsodium: [] as number[], openssl: [] as number[] };
    for (let run = 0; run < runs; run++) {
      for (const backend of ['libsodium', 'openssl'] as const) {
        const cipher = CHACHAPOLY_BACKENDS[backend];
        rates[backend].push((rate(() => cipher.encrypt(key, 0, run, EMPTY, plaintext, buffer), budgetMs) * bytes) / 1e6);
      }
    }
    return { bytes, libsodiumMBps: figure(rates.libsodium).median, opensslMBps: figure(rates.openssl).median };
  });
  let measuredCrossoverBytes: number | null = null;
  for (let index = bySize.length - 1; index >= 0 && bySize[index]!.opensslMBps > bySize[index]!.libsodiumMBps; index--) {
    measuredCrossoverBytes = bySize[index]!.bytes;
  }
  return { bySize, measuredCrossoverBytes };
}
