/** Section 1, the limit: libsodium through sodium-native, and the key-exchange ceiling per handshake side. */
import sodium from 'sodium-native';
import { generateKeyPair } from '../lib/index.js';
import { figure, type Figure } from './stats.js';

/** Operations per second of `operation`, timed over about `budgetMs`. */
function rate(operation: () => void, budgetMs: number): number {
  let count = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(budgetMs) * 1_000_000n;
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
  const nonce = Buffer.alloc(12);
  const big = Buffer.alloc(64 * 1024, 2);
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
    values.chachaMBps64k.push((rate(() => sodium.crypto_aead_chacha20poly1305_ietf_encrypt(bigOut, big, null, null, nonce, key), budgetMs) * big.byteLength) / 1e6);
    values.chachaMBps1k.push((rate(() => sodium.crypto_aead_chacha20poly1305_ietf_encrypt(smallOut, small, null, null, nonce, key), budgetMs) * small.byteLength) / 1e6);
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
