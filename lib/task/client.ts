/**
 * `pull` (SPEC.md §4.5–§4.7): decode the token, check its expiry locally, open the channel, negotiate, stream the
 * offered files into a staged version while checking every digest, make it current atomically, run the command,
 * report the outcome and wait for the server's durable ACK. Nothing is applied that was not fully received and
 * authenticated.
 */
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import type { KeyPair } from '../noise/index.js';
import { checkTokenExpiry, decodeToken, type TokenFields } from '../token/index.js';
import { connectSecure, describeRetry, retrying, type ChannelLimits, type SecureConnection } from '../transport/index.js';
import { appliedFileMode, currentUmask, DEFAULT_MAX_FILE_MODE, ManagedOutput, type StagedVersion } from './apply.js';
import { taskDigest } from './digests.js';
import { defaultIdentityDir, loadClientId, loadClientKeyPair } from './identity.js';
import { decodeMessage, encodeMessage, expectMessage, MAX_SERVER_MESSAGE_BYTES, UPDATE_PROTOCOL_VERSION, type Offer, type PullIntent, type UpdateMessage } from './messages.js';
import { DEFAULT_LOCK_TIMEOUT_MS } from './output-lock.js';
import { escapeUnprintable, hasUnprintableCharacters } from './printable.js';

/** The most content a client accepts for one task, in bytes. */
export const MAX_PULL_BYTES = 1024 * 1024 * 1024;
/** The longest client name HELLO carries, in characters (UTF-16 code units, as the server counts them). */
export const MAX_CLIENT_NAME_LENGTH = 128;
const SOFTWARE = 'noise-cfg/0.1.0';
/** Variables the --exec command does not inherit: the token (it holds the task's PSK) and the admin API token. */
const SECRET_ENVIRONMENT = ['NOISE_CFG_TOKEN', 'NOISE_CFG_ADMIN_TOKEN'];

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

/** Runs `/bin/sh -c command` in this process's working directory, its output on stderr; resolves with its exit code (127: could not start). */
function runCommand(command: string, environment: Record<string, string>): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...environment };
  for (const name of SECRET_ENVIRONMENT) delete env[name];
  return new Promise((resolve) => {
    // The command's output goes to our stderr so that stdout stays ours (for --json).
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 2, 2], env });
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
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

/**
 * The next message while content is due. A connection that ends there (END, FIN or RST: the server stopped or
 * restarted) is TRANSFER_INTERRUPTED, which says to retry, rather than a bare CONNECTION_TRUNCATED.
 */
async function receiveContent(connection: SecureConnection, output: ManagedOutput, receivedBytes: number, totalBytes: number): Promise<Buffer> {
  const interrupted = (cause?: unknown): NoiseCfgError => new NoiseCfgError('TRANSFER_INTERRUPTED', `the server closed the connection mid-transfer (after ${receivedBytes} of ${totalBytes} bytes; it may have stopped or restarted); nothing was applied and ${output.outDir} is unchanged; retry`, cause === undefined ? undefined : { cause });
  let message: Buffer | null;
  try {
    message = await connection.receive();
  } catch (error) {
    if (isNoiseCfgError(error, 'CONNECTION_TRUNCATED')) throw interrupted(error);
    throw error;
  }
  if (message === null) throw interrupted();
  return message;
}

/** The variables --verify and --exec get on top of the environment (which loses SECRET_ENVIRONMENT). */
function commandEnvironment(token: TokenFields, output: ManagedOutput, offer: Offer): Record<string, string> {
  return { NOISE_CFG_TASK_ID: token.taskId, NOISE_CFG_OUT_DIR: output.outDir, NOISE_CFG_DIGEST: offer.digest };
}

/** After a failed --exec: back to the previous version when there is one, and a line saying what happened. */
async function rollBackAfterFailure(output: ManagedOutput): Promise<{ isRolledBack: boolean; message: string }> {
  try {
    const outcome = await output.rollBack();
    // No local path: this text is also the RESULT message the server records.
    return { isRolledBack: true, message: `rolled back: the previous version (task ${outcome.to.taskId}) is current again` };
  } catch (error) {
    if (isNoiseCfgError(error, 'ROLLBACK_UNAVAILABLE')) {
      return { isRolledBack: false, message: `there is no previous version to roll back to, so the new files stay current (the next pull applies them and runs the command again)` };
    }
    if (isNoiseCfgError(error)) return { isRolledBack: false, message: `the rollback failed (${error.message}); the new files stay current` };
    throw error;
  }
}

// A malformed offer is PROTOCOL_ERROR, and the session is aborted; one whose file list does not hash to its digest
// is DIGEST_MISMATCH, which a pull reports in RESULT like a content mismatch (checkOfferDigest).
function checkOffer(offer: Offer, intent: PullIntent): void {
  const total = offer.files.reduce((sum, file) => sum + file.size, 0);
  if (total !== offer.totalBytes) throw new NoiseCfgError('PROTOCOL_ERROR', `the offer says ${offer.totalBytes} bytes but its files add up to ${total}`);
  if (total > MAX_PULL_BYTES) throw new NoiseCfgError('PROTOCOL_ERROR', `the offer of ${total} bytes exceeds this client's limit of ${MAX_PULL_BYTES}`);
  if (offer.hasContent !== (intent === 'pull')) throw new NoiseCfgError('PROTOCOL_ERROR', 'the offer does not match what was asked (content or dry run)');
}

function checkOfferDigest(offer: Offer): void {
  if (taskDigest(offer.files) !== offer.digest) throw new NoiseCfgError('DIGEST_MISMATCH', 'the offered file list does not hash to the offered task digest');
}

async function dryRun(output: ManagedOutput, offer: Offer): Promise<Changes> {
  const current = (await output.currentFiles()) ?? new Map();
  const umask = currentUmask();
  const changes: Changes = { added: [], changed: [], removed: [], unchanged: [] };
  for (const file of offer.files) {
    const existing = current.get(file.path);
    // The mode that a pull would really write here, not the one offered.
    if (!existing) changes.added.push(file.path);
    else if (existing.digest !== file.digest || existing.mode !== appliedFileMode(file.mode, output.maxFileMode, umask)) changes.changed.push(file.path);
    else changes.unchanged.push(file.path);
    current.delete(file.path);
  }
  changes.removed.push(...current.keys());
  return changes;
}

async function receiveOffer(connection: SecureConnection, output: ManagedOutput, token: TokenFields, offer: Offer, options: PullOptions & { intent: PullIntent }, have: string | null, progress: (line: string) => void): Promise<PullResult> {
  checkOffer(offer, options.intent);
  const paths = offer.files.map((file) => file.path);
  if (options.intent === 'dry-run') {
    checkOfferDigest(offer);
    const changes = await dryRun(output, offer);
    await connection.close();
    return { status: 'dry-run', taskId: token.taskId, files: paths, changes };
  }
  let staged: StagedVersion | null = null;
  let failure: { code: ErrorCode; message: string } | null = null;
  let exitCode: number | null = null;
  let received = 0;
  try {
    checkOfferDigest(offer);
    staged = await output.stage(token.taskId, offer.digest, offer.files);
    progress(`receiving ${offer.files.length} file(s), ${offer.totalBytes} bytes`);
    const onTransfer = options.onTransferProgress ?? (() => undefined);
    onTransfer(0, offer.totalBytes);
    // Empty files at the start (or all of them: the server sends no CHUNK for 0 bytes) are made before any CHUNK.
    await staged.write(Buffer.alloc(0));
    while (!staged.isComplete) {
      const chunk = expectMessage(await receiveContent(connection, output, received, offer.totalBytes), ['CHUNK']).body;
      received += chunk.byteLength;
      if (received > offer.totalBytes) throw new NoiseCfgError('PROTOCOL_ERROR', 'the server sent more content than it offered');
      await staged.write(chunk);
      onTransfer(received, offer.totalBytes);
    }
    if (options.verify !== undefined) {
      progress(`verifying the staged files: ${options.verify}`);
      await staged.checkStillStaged();
      const verifyCode = await runCommand(options.verify, { ...commandEnvironment(token, output, offer), NOISE_CFG_STAGED_DIR: staged.stagingDir });
      if (verifyCode !== 0) {
        throw new NoiseCfgError('VERIFY_FAILED', `the --verify command exited with ${verifyCode}; nothing was changed in ${output.outDir}, the previous files stay current`);
      }
    }
    progress(`received and checked ${offer.files.length} file(s); making them current`);
    if (have === offer.digest) progress('the files are already current here; making them current again');
    await staged.commit({ isCommandPending: options.exec !== undefined });
    staged = null;
  } catch (error) {
    await staged?.abort();
    // Only failures of the content or of writing it are reported; a broken session is just an error.
    if (isNoiseCfgError(error) && (error.code === 'DIGEST_MISMATCH' || error.code === 'APPLY_FAILED' || error.code === 'VERIFY_FAILED')) {
      failure = { code: error.code, message: error.message };
    } else {
      throw error;
    }
    // The server is still streaming; the rest of the content is read and dropped so that RESULT follows it.
    while (received < offer.totalBytes) {
      received += expectMessage(await connection.receive(), ['CHUNK']).body.byteLength;
    }
    if (received > offer.totalBytes) throw new NoiseCfgError('PROTOCOL_ERROR', 'the server sent more content than it offered');
  }
  let rolledBack: boolean | undefined;
  if (failure === null && options.exec !== undefined) {
    progress(`running: ${options.exec}`);
    try {
      // The command must run on the files this pull checked, not on a directory put in their place meanwhile.
      await output.verifyApplied();
      exitCode = await runCommand(options.exec, commandEnvironment(token, output, offer));
      if (exitCode !== 0) {
        const what = `the command exited with ${exitCode}`;
        if (options.keepOnFailure) {
          rolledBack = false;
          failure = { code: 'COMMAND_FAILED', message: `${what}; the new files stay current (--keep-on-failure)` };
        } else {
          const back = await rollBackAfterFailure(output);
          rolledBack = back.isRolledBack;
          failure = { code: 'COMMAND_FAILED', message: `${what}; ${back.message}` };
        }
      } else await output.commandSucceeded();
    } catch (error) {
      if (!isNoiseCfgError(error) || error.code !== 'APPLY_FAILED') throw error;
      failure = { code: error.code, message: error.message };
      // Whatever now sits at OUT is not what this pull checked: the next pull must not claim to have it.
      await output.forgetState().catch(() => undefined);
    }
  }
  // The files and state.json are settled: a pull waiting for this OUT may go on while the result travels.
  await output.unlock();
  let isAcknowledged = false;
  // From here on the outcome is settled locally; a lost connection only means the server may not know it yet.
  let reply: Buffer | null = null;
  let isLost = false;
  try {
    await send(connection, { type: 'RESULT', body: {
      status: failure === null ? 'applied' : 'failed', exitCode, message: failure?.message.slice(0, 1024) ?? 'applied', digest: offer.digest,
    } });
    reply = await connection.receive();
  } catch (error) {
    progress(`warning: the server did not acknowledge the result (${(error as Error).message}); a re-pull will settle it`);
    connection.destroy();
    isLost = true;
  }
  if (reply === null && !isLost) {
    progress('warning: the server ended the session without acknowledging the result; a re-pull will settle it');
    connection.destroy();
  } else if (reply !== null) {
    // A message other than ACK is the server breaking the protocol, not a lost connection: the pull fails.
    const answer = decodeMessage(reply);
    if (answer.type === 'REJECT') {
      // The task was cancelled, or this client revoked, while it applied: the server counts the result for nothing.
      const where = failure === null ? `the files it offered are in place in ${output.outDir}, but ` : '';
      throw new NoiseCfgError('REJECTED', `${where}the server refused the result: ${answer.body.reason}: ${answer.body.message}`);
    }
    if (answer.type === 'CHUNK') {
      throw new NoiseCfgError('PROTOCOL_ERROR', `the server sent more content than it offered (a CHUNK after the ${offer.totalBytes} offered bytes); the offered files had all arrived and matched the offered digest before they were made current, so ${output.outDir} holds exactly the offered version`);
    }
    expectMessage(reply, ['ACK']);
    isAcknowledged = true;
    await connection.close().catch(() => connection.destroy());
  }
  return {
    status: failure === null ? 'applied' : 'failed',
    taskId: token.taskId,
    files: failure === null || (failure.code === 'COMMAND_FAILED' && !rolledBack) ? paths : [],
    ...(options.exec !== undefined ? { exitCode } : {}),
    ...(failure ? { failure } : {}),
    ...(rolledBack !== undefined ? { rolledBack } : {}),
    isAcknowledged,
  };
}
