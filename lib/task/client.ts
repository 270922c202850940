/**
 * `pull` (SPEC.md §4.5–§4.7): decode the token, check its expiry locally, open the channel, negotiate, stream the
 * offered files into a staged version while checking every digest, make it current atomically, run the command,
 * report the outcome and wait for the server's durable ACK. Nothing is applied that was not fully received and
 * authenticated. This file opens the connection and negotiates; pull-apply.ts carries the OFFER out.
 */
import { hostname } from 'node:os';
import { VERSION } from '../version.js';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import type { KeyPair } from '../noise/index.js';
import { checkTokenExpiry, decodeToken, type TokenFields } from '../token/index.js';
import { connectSecure, describeRetry, retrying, type ChannelLimits, type SecureConnection } from '../transport/index.js';
import { DEFAULT_MAX_FILE_MODE, ManagedOutput } from './apply.js';
import { defaultIdentityDir, loadClientId, loadClientKeyPair } from './identity.js';
import { encodeMessage, expectMessage, MAX_SERVER_MESSAGE_BYTES, UPDATE_PROTOCOL_VERSION, type PullIntent, type UpdateMessage } from './messages.js';
import { DEFAULT_LOCK_TIMEOUT_MS } from './output-lock.js';
import { escapeUnprintable, hasUnprintableCharacters } from './printable.js';
import { receiveOffer } from './pull-apply.js';

export { MAX_PULL_BYTES } from './pull-apply.js';

/** The longest client name HELLO carries, in characters (UTF-16 code units, as the server counts them). */
export const MAX_CLIENT_NAME_LENGTH = 128;
// HELLO's `software` field (SPEC.md §4.5): this build's name and version, from the one version definition.
const SOFTWARE = `noise-cfg/${VERSION}`;

/** What to pull and where. */
export interface PullOptions {
  /** The token text (white space around it is ignored). */
  token: string;
  /** The output directory; noise-cfg owns it (SPEC.md §4.6). Not needed for `check`. */
  outDir?: string;
  /** How this client appears to the operator; default: the host name. */
  name?: string;
  /**
   * Shell command to run after a successful apply, in this process's working directory; its exit code decides
   * applied or failed. When it fails, OUT goes back to the previous version unless `keepOnFailure`.
   */
  exec?: string;
  /**
   * Shell command to run on the staged version before it becomes current, in this process's working directory,
   * with NOISE_CFG_STAGED_DIR naming it. Non-zero: nothing changes under OUT and the result is failed
   * (VERIFY_FAILED).
   */
  verify?: string;
  /** When `exec` fails, leave the new version current instead of going back to the previous one. */
  keepOnFailure?: boolean;
  /** `pull` (default), `dry-run` (show what would change, report nothing) or `check` (token, reachability, pin). */
  intent?: PullIntent;
  /** Where this client's identity lives; default `$XDG_CONFIG_HOME/noise-cfg`. */
  identityDir?: string;
  limits?: Partial<ChannelLimits>;
  /**
   * How long to keep retrying a busy or unreachable server, in milliseconds (default 30 000; 0 = one attempt).
   * A wrong token, a wrong pin or an unsupported version is never retried.
   */
  retryForMs?: number;
  /** The clock, in milliseconds (for the token's expiry). */
  now?: () => number;
  /** Progress lines for people (stderr in the CLI). Called synchronously, at each step. */
  onProgress?: (line: string) => void;
  /**
   * Transfer progress, in bytes: called with 0 once the offer is accepted, then after each piece of content
   * received, last with `receivedBytes === totalBytes`. Synchronous; the CLI draws its progress bar from it.
   */
  onTransferProgress?: (receivedBytes: number, totalBytes: number) => void;
  /**
   * The widest permission bits a pulled file gets (default 0o755: the offered mode without group or others
   * write); the umask applies on top. At most 0o777.
   */
  maxFileMode?: number;
  /** How long a pull waits for another pull that is applying to the same outDir, in milliseconds (default 60 000). */
  lockTimeoutMs?: number;
}

/** What a dry run found. */
export interface Changes {
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: string[];
}

/** The outcome of a pull. */
export interface PullResult {
  status: 'applied' | 'up-to-date' | 'dry-run' | 'checked' | 'failed';
  taskId: string;
  /** Paths written (applied), or offered (dry-run). */
  files: string[];
  changes?: Changes;
  /** The --exec command's exit code, if it ran. */
  exitCode?: number | null;
  /** For failed: what failed (DIGEST_MISMATCH, APPLY_FAILED, VERIFY_FAILED or COMMAND_FAILED) and why. */
  failure?: { code: ErrorCode; message: string };
  /** After a failed --exec: true when OUT went back to the previous version, false when the new one stayed. */
  rolledBack?: boolean;
  /** False when the server's ACK did not arrive (the result may not be recorded; a re-pull settles it). */
  isAcknowledged?: boolean;
}

async function send(connection: SecureConnection, message: UpdateMessage): Promise<void> {
  await connection.send(encodeMessage(message));
}

/** `text` cut to at most `length` UTF-16 code units without splitting a surrogate pair. */
function cutToLength(text: string, length: number): string {
  if (text.length <= length) return text;
  const isHighSurrogate = /[\ud800-\udbff]/.test(text[length - 1]!);
  return text.slice(0, isHighSurrogate ? length - 1 : length);
}

/** The name HELLO carries. Throws INVALID_ARGUMENT for a chosen name with an unprintable character. */
function clientName(name: string | undefined): string {
  if (name === undefined) {
    // The host name is not the person's choice: it is sent escaped rather than refused.
    return cutToLength(escapeUnprintable(hostname()), MAX_CLIENT_NAME_LENGTH);
  }
  if (hasUnprintableCharacters(name)) {
    const character = [...name].find((candidate) => hasUnprintableCharacters(candidate))!;
    throw new NoiseCfgError('INVALID_ARGUMENT', `name ${escapeUnprintable(JSON.stringify(name))} has the unprintable character ${escapeUnprintable(character)}; choose a name of printable characters`);
  }
  return cutToLength(name, MAX_CLIENT_NAME_LENGTH);
}

function checkOptions(options: PullOptions): void {
  const { maxFileMode, lockTimeoutMs } = options;
  if (maxFileMode !== undefined && !(Number.isInteger(maxFileMode) && maxFileMode >= 0 && maxFileMode <= 0o777)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `maxFileMode must be permission bits from 0 to 0o777, got ${String(maxFileMode)}`);
  }
  if (lockTimeoutMs !== undefined && !(Number.isSafeInteger(lockTimeoutMs) && lockTimeoutMs >= 0)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `lockTimeoutMs must be a whole number of milliseconds, 0 or more, got ${String(lockTimeoutMs)}`);
  }
}

/**
 * Pulls a task. Throws TOKEN_* (before any connection), INVALID_ARGUMENT (options, an unprintable name),
 * IDENTITY_UNAVAILABLE and DATA_DIR_INSECURE (the identity directory or its files; before connecting),
 * CONNECTION_FAILED, HANDSHAKE_TIMEOUT, TOO_MANY_CONNECTIONS (the server stayed busy for `retryForMs`; these three are
 * retried with backoff until then), AUTHENTICATION_FAILED, REMOTE_STATIC_MISMATCH, REJECTED (the reason in the
 * message), PROTOCOL_ERROR (also: content past the offered total), CONNECTION_TRUNCATED, TRANSFER_INTERRUPTED (the
 * server closed the connection while content was due; nothing applied; retry), APPLY_FAILED (the output
 * directory or a directory above it is not safe, or another pull held its lock for `lockTimeoutMs`; all before
 * connecting). Failures after the files arrived (digest, apply, command) are reported to the server and returned
 * as status `failed`.
 */
export async function pull(options: PullOptions): Promise<PullResult> {
  const now = options.now ?? Date.now;
  const progress = options.onProgress ?? (() => undefined);
  const token: TokenFields = decodeToken(options.token);
  checkTokenExpiry(token, Math.floor(now() / 1000));
  const intent = options.intent ?? 'pull';
  if (intent !== 'check' && (options.outDir === undefined || options.outDir === '')) {
    throw new NoiseCfgError('INVALID_ARGUMENT', 'outDir is required to pull or dry-run');
  }
  checkOptions(options);
  const name = clientName(options.name);
  // The identity is loaded before --out is locked and before connecting: a directory that cannot be used fails here.
  const identityDir = options.identityDir ?? defaultIdentityDir();
  const identity: ClientIdentity = token.mode === 'xxpsk3' ? { keyPair: loadClientKeyPair(identityDir), clientId: null } : { keyPair: null, clientId: loadClientId(identityDir) };
  const output = options.outDir === undefined ? null : new ManagedOutput(options.outDir, { maxFileMode: options.maxFileMode ?? DEFAULT_MAX_FILE_MODE });
  // The lock is held from before connecting until the state is written: two pulls into one OUT take turns.
  if (output && intent === 'pull') {
    await output.lock({
      timeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
      onWait: (pid) => progress(`waiting for another noise-cfg pull (pid ${pid}) applying to ${output.outDir}`),
    });
  }
  try {
    return await pullLocked(options, token, intent, name, identity, output, progress);
  } finally {
    await output?.unlock();
  }
}

// The channel speaks of PSKs and task ids; someone pulling holds a token, and a refused handshake means the server
// no longer holds the task behind it as often as a wrong token. An ended task it holds is refused after HELLO.
function inTokenTerms(error: unknown): never {
  if (isNoiseCfgError(error, 'AUTHENTICATION_FAILED')) {
    throw new NoiseCfgError('AUTHENTICATION_FAILED', 'the server closed the connection during the handshake: wrong token, or the server does not hold the task (never created there, deleted, or removed after it ended)', { cause: error.cause });
  }
  throw error;
}

/** What HELLO and the handshake carry of this client: its static key pair (xxpsk3) or its client id (nnpsk0). */
interface ClientIdentity {
  keyPair: KeyPair | null;
  clientId: string | null;
}

async function pullLocked(options: PullOptions, token: TokenFields, intent: PullIntent, name: string, identity: ClientIdentity, output: ManagedOutput | null, progress: (line: string) => void): Promise<PullResult> {
  // `have` is sent only for files that are really there: a new, emptied or edited --out gets the files again.
  const held = output ? await output.heldDigest(token.taskId) : { digest: null, reason: null };
  if (held.reason !== null) progress(held.reason);
  const have = held.digest;
  const isXx = token.mode === 'xxpsk3';

  progress(`connecting to ${token.host}:${token.port} (${token.mode}, task ${token.taskId})`);
  const hello: UpdateMessage = { type: 'HELLO', body: {
    protocol: UPDATE_PROTOCOL_VERSION, software: SOFTWARE, name, clientId: identity.clientId, have, intent,
  } };
  // A server at its session caps answers REJECT busy (before or after HELLO): like a busy handshake, that is
  // retried within the same window, and it is "server busy" (exit 11), not a refusal of this client.
  const { connection, reply } = await retrying(async () => {
    const connection = await connectSecure(token.host, token.port, {
      mode: token.mode,
      taskId: token.taskId,
      psk: token.psk,
      ...(isXx ? { staticKeyPair: identity.keyPair!, serverPublicKey: token.serverPublicKey! } : {}),
      // A server's largest message is an OFFER: a client holds no more than that for one message, whatever it is sent.
      limits: { maxReceiveMessageBytes: MAX_SERVER_MESSAGE_BYTES, ...options.limits },
    }).catch(inTokenTerms);
    try {
      await send(connection, hello);
      const reply = expectMessage(await connection.receive(), ['REJECT', 'UP_TO_DATE', 'OFFER', 'CHECKED']);
      if (reply.type === 'REJECT' && reply.body.reason === 'busy') throw new NoiseCfgError('TOO_MANY_CONNECTIONS', `the server is busy: ${reply.body.message}`);
      return { connection, reply };
    } catch (error) {
      connection.destroy();
      throw error;
    }
  }, {
    ...(options.retryForMs !== undefined ? { retryForMs: options.retryForMs } : {}),
    onRetry: (notice) => progress(describeRetry(notice)),
  });
  try {
    switch (reply.type) {
      case 'REJECT':
        throw new NoiseCfgError('REJECTED', `the server refused the pull: ${reply.body.reason}: ${reply.body.message}`);
      case 'CHECKED':
        progress(`token, server and pin are good; the task is active with ${reply.body.files} file(s), ${reply.body.totalBytes} bytes`);
        await connection.close();
        return { status: 'checked', taskId: token.taskId, files: [] };
      case 'UP_TO_DATE':
        progress('already up to date');
        await connection.close();
        return { status: 'up-to-date', taskId: token.taskId, files: [] };
      case 'OFFER':
        return await receiveOffer(connection, output!, token, reply.body, { ...options, intent }, have, progress);
    }
  } catch (error) {
    connection.destroy();
    throw error;
  }
}
