/**
 * connectSecure with retries (SPEC.md §2.3): a busy server, a connection that cannot be made yet, a reset or a
 * handshake deadline are tried again with exponential backoff and full jitter, for at most a window of time; an
 * answer that another try cannot change (wrong token, wrong pin, unsupported version or mode) is final at once.
 */
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import type { ClientChannelOptions } from './channel-options.js';
import { DEFAULT_RETRY_FOR_MS, RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS } from './limits.js';
import type { SecureConnection } from './secure-connection.js';
import { connectSecure } from './secure-socket.js';

export { DEFAULT_RETRY_FOR_MS };

/** Why an attempt is worth another: the server said busy, the connection could not be made, it was reset, or it timed out. */
export type RetryReason = 'busy' | 'unreachable' | 'reset' | 'timeout';

/** What onRetry is told before each wait. */
export interface RetryNotice {
  reason: RetryReason;
  /** The error of the attempt that failed. */
  error: NoiseCfgError;
  /** The wait before the next attempt, in milliseconds. */
  delayMs: number;
  /** The number of the attempt that failed, from 1. */
  attempt: number;
}

/** How connectSecureWithRetry retries. */
export interface RetryOptions {
  /** How long to keep starting attempts, in milliseconds from the first; 0 = a single attempt. Default 30 000. */
  retryForMs?: number;
  /** Told before each wait (a pull prints "server busy, retrying in 0.8 s"). */
  onRetry?: (notice: RetryNotice) => void;
  /** A random number in [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

const RETRY_LINES: Readonly<Record<RetryReason, string>> = {
  busy: 'server busy',
  unreachable: 'cannot reach the server',
  reset: 'the server reset the connection',
  timeout: 'the connection timed out',
};

/** One line for people about a retry: "server busy, retrying in 0.8 s". */
export function describeRetry(notice: RetryNotice): string {
  const errno = (notice.error.cause as NodeJS.ErrnoException | undefined)?.code;
  const detail = notice.reason === 'unreachable' && errno !== undefined ? ` (${errno})` : '';
  return `${RETRY_LINES[notice.reason]}${detail}, retrying in ${(notice.delayMs / 1000).toFixed(1)} s`;
}

/** Connect errors that a later attempt may not meet. */
const RETRYABLE_CONNECT_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE']);

/** Why `error` is worth another attempt, or null when it is final. */
export function retryReasonOf(error: unknown): RetryReason | null {
  if (!isNoiseCfgError(error)) return null;
  switch (error.code) {
    case 'TOO_MANY_CONNECTIONS':
      return 'busy';
    case 'HANDSHAKE_TIMEOUT':
      return 'timeout';
    case 'CONNECTION_FAILED': {
      const errno = (error.cause as NodeJS.ErrnoException | undefined)?.code;
      if (errno === undefined || !RETRYABLE_CONNECT_ERRNO.has(errno)) return null;
      return errno === 'ECONNRESET' || errno === 'EPIPE' ? 'reset' : errno === 'ETIMEDOUT' ? 'timeout' : 'unreachable';
    }
    default:
      return null;
  }
}

/**
 * Runs `attempt` until it succeeds, retrying what `retryReasonOf` calls worth another try: busy
 * (TOO_MANY_CONNECTIONS), the connect errors ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH and
 * EAI_AGAIN and the connect timeout, a reset during the handshake and HANDSHAKE_TIMEOUT. The n-th wait is uniform in
 * [0, min(5000, 100 * 2^(n-1))) ms; no attempt starts after `retryForMs`. Throws at once for a final error, and the
 * last error (saying how many attempts were made) when the window has passed; INVALID_ARGUMENT for a bad retryForMs.
 * An attempt may go past the handshake (a pull also waits for the answer to its HELLO, which may be busy).
 */
export async function retrying<T>(attempt: () => Promise<T>, retry: RetryOptions = {}): Promise<T> {
  const retryForMs = retry.retryForMs ?? DEFAULT_RETRY_FOR_MS;
  if (!Number.isSafeInteger(retryForMs) || retryForMs < 0) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `retryForMs must be a whole number of milliseconds >= 0, got ${String(retryForMs)}`);
  }
  const random = retry.random ?? Math.random;
  const started = performance.now();
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (error) {
      const reason = retryReasonOf(error);
      if (reason === null) throw error;
      const failure = error as NoiseCfgError;
      const leftMs = retryForMs - (performance.now() - started);
      if (leftMs <= 0) {
        if (attempts === 1) throw failure;
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        throw new NoiseCfgError(failure.code, `${failure.message} (gave up after ${attempts} attempts in ${seconds} s)`, { cause: failure.cause ?? failure });
      }
      const boundMs = Math.min(RETRY_MAX_DELAY_MS, RETRY_BASE_DELAY_MS * 2 ** Math.min(attempts - 1, 16));
      const delayMs = Math.min(leftMs, Math.floor(random() * boundMs));
      retry.onRetry?.({ reason, error: failure, delayMs, attempt: attempts });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** connectSecure under `retrying` (above). Throws what connectSecure throws. */
export function connectSecureWithRetry(host: string, port: number, options: ClientChannelOptions, retry: RetryOptions = {}): Promise<SecureConnection> {
  return retrying(() => connectSecure(host, port, options), retry);
}
