/**
 * The applying half of `pull` (SPEC.md §4.7): an OFFER carried out. The content is streamed into a staged version
 * while every digest is checked, --verify runs on it, it is made current atomically, --exec runs (with a rollback
 * when it fails), and the RESULT goes back with the server's ACK awaited. The connection half is client.ts.
 */
import { spawn } from 'node:child_process';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import type { TokenFields } from '../token/index.js';
import type { SecureConnection } from '../transport/index.js';
import { appliedFileMode, currentUmask, type ManagedOutput, type StagedVersion } from './apply.js';
import type { Changes, PullOptions, PullResult } from './client.js';
import { taskDigest } from './digests.js';
import { decodeMessage, encodeMessage, expectMessage, type Offer, type PullIntent } from './messages.js';

/** The most content a client accepts for one task, in bytes. */
export const MAX_PULL_BYTES = 1024 * 1024 * 1024;
/** Variables the --exec command does not inherit: the token (it holds the task's PSK) and the admin API token. */
const SECRET_ENVIRONMENT = ['NOISE_CFG_TOKEN', 'NOISE_CFG_ADMIN_TOKEN'];

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

/** What staging or the command ended with: null when the files are current and the command (if any) succeeded. */
type Failure = { code: ErrorCode; message: string } | null;

/**
 * Carries out an OFFER: a dry run's list of changes, or the content received into a staged version, verified and
 * made current, the command run, and the RESULT reported with the server's ACK awaited.
 */
export async function receiveOffer(connection: SecureConnection, output: ManagedOutput, token: TokenFields, offer: Offer, options: PullOptions & { intent: PullIntent }, have: string | null, progress: (line: string) => void): Promise<PullResult> {
  checkOffer(offer, options.intent);
  const paths = offer.files.map((file) => file.path);
  if (options.intent === 'dry-run') {
    checkOfferDigest(offer);
    const changes = await dryRun(output, offer);
    await connection.close();
    return { status: 'dry-run', taskId: token.taskId, files: paths, changes };
  }
  let failure = await receiveAndCommit(connection, output, token, offer, options, have, progress);
  let exitCode: number | null = null;
  let rolledBack: boolean | undefined;
  if (failure === null && options.exec !== undefined) ({ failure, exitCode, rolledBack } = await runExec(output, token, offer, options, progress));
  // The files and state.json are settled: a pull waiting for this OUT may go on while the result travels.
  await output.unlock();
  const isAcknowledged = await reportResult(connection, output, offer, failure, exitCode, progress);
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

// Receives the content into a staged version, runs --verify on it, and makes it current. A failure of the content
// or of writing it is returned (the rest of the content is read and dropped so that RESULT can follow); any other
// failure is thrown.
async function receiveAndCommit(connection: SecureConnection, output: ManagedOutput, token: TokenFields, offer: Offer, options: PullOptions, have: string | null, progress: (line: string) => void): Promise<Failure> {
  let staged: StagedVersion | null = null;
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
    return null;
  } catch (error) {
    await staged?.abort();
    // Only failures of the content or of writing it are reported; a broken session is just an error.
    if (!isNoiseCfgError(error) || !(error.code === 'DIGEST_MISMATCH' || error.code === 'APPLY_FAILED' || error.code === 'VERIFY_FAILED')) throw error;
    // The server is still streaming; the rest of the content is read and dropped so that RESULT follows it.
    while (received < offer.totalBytes) {
      received += expectMessage(await connection.receive(), ['CHUNK']).body.byteLength;
    }
    if (received > offer.totalBytes) throw new NoiseCfgError('PROTOCOL_ERROR', 'the server sent more content than it offered');
    return { code: error.code, message: error.message };
  }
}

// Runs --exec on the files just made current; on a non-zero exit rolls back unless --keep-on-failure.
async function runExec(output: ManagedOutput, token: TokenFields, offer: Offer, options: PullOptions & { exec?: string }, progress: (line: string) => void): Promise<{ failure: Failure; exitCode: number | null; rolledBack: boolean | undefined }> {
  progress(`running: ${options.exec!}`);
  let exitCode: number | null = null;
  try {
    // The command must run on the files this pull checked, not on a directory put in their place meanwhile.
    await output.verifyApplied();
    exitCode = await runCommand(options.exec!, commandEnvironment(token, output, offer));
    if (exitCode === 0) {
      await output.commandSucceeded();
      return { failure: null, exitCode, rolledBack: undefined };
    }
    const what = `the command exited with ${exitCode}`;
    if (options.keepOnFailure) return { failure: { code: 'COMMAND_FAILED', message: `${what}; the new files stay current (--keep-on-failure)` }, exitCode, rolledBack: false };
    const back = await rollBackAfterFailure(output);
    return { failure: { code: 'COMMAND_FAILED', message: `${what}; ${back.message}` }, exitCode, rolledBack: back.isRolledBack };
  } catch (error) {
    if (!isNoiseCfgError(error) || error.code !== 'APPLY_FAILED') throw error;
    // Whatever now sits at OUT is not what this pull checked: the next pull must not claim to have it.
    await output.forgetState().catch(() => undefined);
    return { failure: { code: error.code, message: error.message }, exitCode, rolledBack: undefined };
  }
}

// Sends RESULT and waits for the ACK; returns whether it came. From here on the outcome is settled locally; a lost
// connection only means the server may not know it yet.
async function reportResult(connection: SecureConnection, output: ManagedOutput, offer: Offer, failure: Failure, exitCode: number | null, progress: (line: string) => void): Promise<boolean> {
  let reply: Buffer | null;
  try {
    await connection.send(encodeMessage({ type: 'RESULT', body: {
      status: failure === null ? 'applied' : 'failed', exitCode, message: failure?.message.slice(0, 1024) ?? 'applied', digest: offer.digest,
    } }));
    reply = await connection.receive();
  } catch (error) {
    progress(`warning: the server did not acknowledge the result (${(error as Error).message}); a re-pull will settle it`);
    connection.destroy();
    return false;
  }
  if (reply === null) {
    progress('warning: the server ended the session without acknowledging the result; a re-pull will settle it');
    connection.destroy();
    return false;
  }
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
  await connection.close().catch(() => connection.destroy());
  return true;
}
