/**
 * Where a server's CPU time goes, from a V8 CPU profile (`node --cpu-prof`): each sample's time is charged to the
 * category of the innermost frame that has one, walking from the sampled frame towards the root, so time in Node's
 * internals called by, say, the store is the store's. Categories are matched on the frame's script and function.
 * The samples are of the main thread's wall-clock time while not idle, so a blocking system call (an fsync) shows
 * as time in its caller although it uses no CPU: such a category says so in its name.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A category and how to recognise a frame of it; the first rule that matches a frame wins. */
interface CategoryRule {
  category: string;
  matches(frame: CallFrame): boolean;
}

const byFunction = (...names: string[]) => (frame: CallFrame): boolean => names.includes(frame.functionName);
const byUrl = (...parts: string[]) => (frame: CallFrame): boolean => parts.some((part) => frame.url.includes(part));

/** The categories of issue 15's breakdown, most specific first. */
export const CATEGORY_RULES: readonly CategoryRule[] = [
  { category: 'key exchange (X25519, keypairs)', matches: (frame) => byFunction('crypto_scalarmult', 'crypto_scalarmult_base', 'crypto_kx_keypair', 'crypto_box_keypair', 'randombytes_buf')(frame) || byUrl('noise-handshake/dh.js', '/lib/noise/dh-functions.js', '/lib/noise/keys.js')(frame) },
  { category: 'AEAD (ChaChaPoly)', matches: (frame) => /chacha20poly1305|crypto_aead/.test(frame.functionName) || byUrl('/lib/noise/cipher-functions.js', '/lib/noise/cipher-state.js')(frame) },
  { category: 'hashing (BLAKE2b, HMAC, HKDF)', matches: (frame) => /generichash|crypto_hash/.test(frame.functionName) || byUrl('/lib/noise/hash-functions.js', '/lib/noise/symmetric-state.js')(frame) },
  { category: 'Noise state machine', matches: byUrl('/lib/noise/') },
  // better-sqlite3 runs COMMIT (with synchronous=FULL, an fsync) on the calling thread: the profiler's samples there
  // are the event loop blocked on the disk, which process.cpuUsage() does not count as CPU.
  { category: 'store COMMIT (fsync wait; the event loop is blocked)', matches: (frame) => frame.functionName === 'sqliteTransaction' && frame.url.includes('better-sqlite3') },
  { category: 'store (SQLite)', matches: (frame) => byUrl('better-sqlite3', '/lib/task/store', '/lib/task/sqlite')(frame) },
  { category: 'store (PostgreSQL: pg, pg-protocol and our JavaScript)', matches: byUrl('/node_modules/pg', '/lib/task/postgres') },
  { category: 'JSON', matches: byFunction('parse', 'stringify') },
  { category: 'task server (negotiate, messages, content)', matches: byUrl('/lib/task/') },
  { category: 'channel (records, framing, handshake drivers)', matches: byUrl('/lib/transport/') },
  { category: 'socket and stream machinery (Node)', matches: byUrl('node:net', 'node:internal/stream_base_commons', 'node:internal/streams', 'node:stream', 'node:internal/net', 'node:internal/tcp', 'node:events', 'node:internal/event_target') },
  { category: 'timers and microtasks (Node)', matches: (frame) => byUrl('node:internal/timers', 'node:internal/process/task_queues')(frame) || byFunction('processTicksAndRejections', 'runMicrotasks')(frame) },
  { category: 'garbage collector', matches: byFunction('(garbage collector)') },
  { category: 'native, outside JS ((program): syscalls, libuv, V8)', matches: byFunction('(program)') },
  { category: 'startup (module loading)', matches: byUrl('node:internal/modules', 'node:internal/deps/cjs-module-lexer', 'node:internal/bootstrap', 'node:internal/process/pre_execution') },
];

const IDLE = '(idle)';
const UNCATEGORISED = 'other';

export interface Breakdown {
  /** Busy time (all samples but idle), in milliseconds. */
  busyMs: number;
  /** Per category: milliseconds and share of busy time, largest first. */
  categories: { category: string; ms: number; share: number }[];
  /** The uncategorised frames that took most time, to refine the rules by. */
  topOther: { frame: string; ms: number }[];
}

/** The breakdown of one or more profiles, summed. */
export function breakdownOf(profiles: readonly CpuProfile[]): Breakdown {
  const totals = new Map<string, number>();
  const other = new Map<string, number>();
  let busyUs = 0;
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parentOf = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
    const categoryOfNode = new Map<number, string>();
    const categoryOf = (id: number): string => {
      const known = categoryOfNode.get(id);
      if (known !== undefined) return known;
      let category = UNCATEGORISED;
      for (let current: number | undefined = id; current !== undefined; current = parentOf.get(current)) {
        const rule = CATEGORY_RULES.find((candidate) => candidate.matches(byId.get(current!)!.callFrame));
        if (rule) {
          category = rule.category;
          break;
        }
      }
      categoryOfNode.set(id, category);
      return category;
    };
    profile.samples.forEach((id, index) => {
      const micros = profile.timeDeltas[index] ?? 0;
      const frame = byId.get(id)!.callFrame;
      if (frame.functionName === IDLE) return;
      busyUs += micros;
      const category = categoryOf(id);
      totals.set(category, (totals.get(category) ?? 0) + micros);
      if (category === UNCATEGORISED) {
        const name = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules|dist)\//, '')}`.trim();
        other.set(name, (other.get(name) ?? 0) + micros);
      }
    });
  }
  const categories = [...totals].map(([category, us]) => ({ category, ms: us / 1000, share: busyUs === 0 ? 0 : us / busyUs })).sort((a, b) => b.ms - a.ms);
  const topOther = [...other].map(([frame, us]) => ({ frame, ms: us / 1000 })).sort((a, b) => b.ms - a.ms).slice(0, 8);
  return { busyMs: busyUs / 1000, categories, topOther };
}

/** Reads `.cpuprofile` files. */
export function readProfiles(files: readonly string[]): CpuProfile[] {
  return files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
}

/** The breakdown as a Markdown table. */
export function formatBreakdown(breakdown: Breakdown): string {
  const lines = ['| where the server\'s main thread is busy | share of busy time |', '|---|---|'];
  for (const { category, share } of breakdown.categories) lines.push(`| ${category} | ${(share * 100).toFixed(1)} % |`);
  return lines.join('\n');
}
