/**
 * `pull` (SPEC.md §4.5–§4.7): decode the token, check its expiry locally, open the channel, negotiate, stream the
 * offered files into a staged version while checking every digest, make it current atomically, run the command,
 * report the outcome and wait for the server's durable ACK. Nothing is applied that was not fully received and
 * authenticated.
 */
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import { checkTokenExpiry, decodeToken, type TokenFields } from '../token/token.js';
import type { ChannelLimits } from '../transport/limits.js';
import type { SecureConnection } from '../transport/secure-connection.js';
import { connectSecureWithRetry, describeRetry } from '../transport/connect-with-retry.js';
import { ManagedOutput, type StagedVersion } from './apply.js';
import { taskDigest } from './digests.js';
import { defaultIdentityDir, loadClientId, loadClientKeyPair } from './identity.js';
import { encodeMessage, expectMessage, UPDATE_PROTOCOL_VERSION, type Offer, type PullIntent, type UpdateMessage } from './messages.js';

/** The most content a client accepts for one task, in bytes. */
export const MAX_PULL_BYTES = 1024 * 1024 * 1024;
const SOFTWARE = 'noise-cfg/0.1.0';

/** What to pull and where. */
export interface PullOptions {
  /** The token text (white space around it is ignored). */
  token: string;
  /** The output directory; noise-cfg owns it (SPEC.md §4.6). Not needed for `check`. */
  outDir?: string;
  /** How this client appears to the operator; default: the host name. */
  name?: string;
  /** Shell command to run after a successful apply; its exit code decides applied or failed. */
  exec?: string;
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
  /** Progress lines for people (stderr in the CLI). */
  onProgress?: (line: string) => void;
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
  /** For failed: what failed (DIGEST_MISMATCH, APPLY_FAILED or COMMAND_FAILED) and why. */
  failure?: { code: ErrorCode; message: string };
  /** False when the server's ACK did not arrive (the result may not be recorded; a re-pull settles it). */
  isAcknowledged?: boolean;
}

async function send(connection: SecureConnection, message: UpdateMessage): Promise<void> {
  await connection.send(encodeMessage(message));
}

function runCommand(command: string, environment: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    // The command's output goes to our stderr so that stdout stays ours (for --json).
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 2, 2], env: { ...process.env, ...environment } });
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/**
 * Pulls a task. Throws TOKEN_* (before any connection), CONNECTION_FAILED, HANDSHAKE_TIMEOUT,
 * AUTHENTICATION_FAILED, REMOTE_STATIC_MISMATCH, REJECTED (the reason in the message), PROTOCOL_ERROR,
 * CONNECTION_TRUNCATED, APPLY_FAILED (the output directory is not usable). Failures after the files arrived
 * (digest, apply, command) are reported to the server and returned as status `failed`.
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
  const output = options.outDir === undefined ? null : new ManagedOutput(options.outDir);
  if (output && intent === 'pull') await output.checkTarget();
  const state = output ? await output.readState() : null;
  // A version whose command failed is not "had": the next pull applies it and runs the command again.
  const have = state && state.taskId === token.taskId && state.isCommandDone !== false ? state.digest : null;
  const identityDir = options.identityDir ?? defaultIdentityDir();
  const isXx = token.mode === 'xxpsk3';

  progress(`connecting to ${token.host}:${token.port} (${token.mode}, task ${token.taskId})`);
  const connection = await connectSecureWithRetry(token.host, token.port, {
    mode: token.mode,
    taskId: token.taskId,
    psk: token.psk,
    ...(isXx ? { staticKeyPair: loadClientKeyPair(identityDir), serverPublicKey: token.serverPublicKey! } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
  }, {
    ...(options.retryForMs !== undefined ? { retryForMs: options.retryForMs } : {}),
    onRetry: (notice) => progress(describeRetry(notice)),
  });
  try {
    await send(connection, { type: 'HELLO', body: {
      protocol: UPDATE_PROTOCOL_VERSION, software: SOFTWARE, name: (options.name ?? hostname()).slice(0, 128),
      clientId: isXx ? null : loadClientId(identityDir), have, intent,
    } });
    const reply = expectMessage(await connection.receive(), ['REJECT', 'UP_TO_DATE', 'OFFER', 'CHECKED']);
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

function checkOffer(offer: Offer, intent: PullIntent): void {
  if (taskDigest(offer.files) !== offer.digest) throw new NoiseCfgError('DIGEST_MISMATCH', 'the offered file list does not hash to the offered task digest');
  const total = offer.files.reduce((sum, file) => sum + file.size, 0);
  if (total !== offer.totalBytes) throw new NoiseCfgError('PROTOCOL_ERROR', `the offer says ${offer.totalBytes} bytes but its files add up to ${total}`);
  if (total > MAX_PULL_BYTES) throw new NoiseCfgError('PROTOCOL_ERROR', `the offer of ${total} bytes exceeds this client's limit of ${MAX_PULL_BYTES}`);
  if (offer.hasContent !== (intent === 'pull')) throw new NoiseCfgError('PROTOCOL_ERROR', 'the offer does not match what was asked (content or dry run)');
}

async function dryRun(output: ManagedOutput, offer: Offer): Promise<Changes> {
  const current = (await output.currentFiles()) ?? new Map();
  const changes: Changes = { added: [], changed: [], removed: [], unchanged: [] };
  for (const file of offer.files) {
    const existing = current.get(file.path);
    if (!existing) changes.added.push(file.path);
    else if (existing.digest !== file.digest || existing.mode !== file.mode) changes.changed.push(file.path);
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
    const changes = await dryRun(output, offer);
    await connection.close();
    return { status: 'dry-run', taskId: token.taskId, files: paths, changes };
  }
  progress(`receiving ${offer.files.length} file(s), ${offer.totalBytes} bytes`);
  let staged: StagedVersion | null = null;
  let failure: { code: ErrorCode; message: string } | null = null;
  let exitCode: number | null = null;
  let received = 0;
  try {
    staged = await output.stage(token.taskId, offer.digest, offer.files);
    while (!staged.isComplete) {
      const chunk = expectMessage(await connection.receive(), ['CHUNK']).body;
      received += chunk.byteLength;
      if (received > offer.totalBytes) throw new NoiseCfgError('PROTOCOL_ERROR', 'the server sent more content than it offered');
      await staged.write(chunk);
    }
    if (have === offer.digest) progress('the files are already current here; making them current again');
    await staged.commit();
    staged = null;
    progress(`applied to ${output.outDir}`);
  } catch (error) {
    await staged?.abort();
    // Only failures of the content or of writing it are reported; a broken session is just an error.
    if (isNoiseCfgError(error) && (error.code === 'DIGEST_MISMATCH' || error.code === 'APPLY_FAILED')) {
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
  if (failure === null && options.exec !== undefined) {
    progress(`running: ${options.exec}`);
    await output.setCommandDone(false);
    exitCode = await runCommand(options.exec, { NOISE_CFG_TASK_ID: token.taskId, NOISE_CFG_OUT_DIR: output.outDir, NOISE_CFG_DIGEST: offer.digest });
    if (exitCode !== 0) failure = { code: 'COMMAND_FAILED', message: `the command exited with ${exitCode}` };
    else await output.setCommandDone(true);
  }
  let isAcknowledged = false;
  // From here on the outcome is settled locally; a lost connection only means the server may not know it yet.
  try {
    await send(connection, { type: 'RESULT', body: {
      status: failure === null ? 'applied' : 'failed', exitCode, message: failure?.message.slice(0, 1024) ?? 'applied', digest: offer.digest,
    } });
    expectMessage(await connection.receive(), ['ACK']);
    isAcknowledged = true;
    await connection.close();
  } catch (error) {
    progress(`warning: the server did not acknowledge the result (${(error as Error).message}); a re-pull will settle it`);
    connection.destroy();
  }
  return {
    status: failure === null ? 'applied' : 'failed',
    taskId: token.taskId,
    files: failure === null || failure.code === 'COMMAND_FAILED' ? paths : [],
    ...(options.exec !== undefined ? { exitCode } : {}),
    ...(failure ? { failure } : {}),
    isAcknowledged,
  };
}
