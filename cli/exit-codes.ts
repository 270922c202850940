/**
 * Process exit codes (SPEC.md §6): the one table of what each exit code means, and the only place error codes
 * become exit codes. The `--help` epilogues are generated from it, and a test holds README and SPEC.md to it.
 */
import type { ErrorCode } from '../lib/index.js';

/** Every exit code, by name, with its meaning as `--help` words it; in the order of the codes. */
export const EXIT_CODE_TABLE = {
  OK: { code: 0, meaning: 'success' },
  FAILURE: { code: 1, meaning: 'failure' },
  USAGE: { code: 2, meaning: 'usage or bad input' },
  NOT_FOUND: { code: 3, meaning: 'no such task or client' },
  ENDED: { code: 4, meaning: 'already done (task ended, client already revoked)' },
  DATA_DIR: { code: 5, meaning: 'data directory or database problem' },
  TASK_INCOMPLETE: { code: 6, meaning: 'task ended incomplete (task watch)' },
  BAD_TOKEN: { code: 10, meaning: 'bad or expired token' },
  UNREACHABLE: { code: 11, meaning: 'cannot reach the peer' },
  AUTHENTICATION_FAILED: { code: 12, meaning: 'authentication failed' },
  REJECTED: { code: 13, meaning: 'rejected' },
  DIGEST_MISMATCH: { code: 14, meaning: 'digest mismatch' },
  APPLY_FAILED: { code: 15, meaning: 'apply failed' },
  COMMAND_FAILED: { code: 16, meaning: 'command failed' },
  VERIFY_FAILED: { code: 17, meaning: 'verify command failed (nothing changed)' },
} as const;

/** The name of an exit code (`NOT_FOUND`). */
export type ExitName = keyof typeof EXIT_CODE_TABLE;

/** Exit codes by name. */
export const EXIT = Object.fromEntries(Object.entries(EXIT_CODE_TABLE).map(([name, { code }]) => [name, code])) as { readonly [Name in ExitName]: (typeof EXIT_CODE_TABLE)[Name]['code'] };

/**
 * One `--help` line listing exit codes: `meanings` names the codes a command can end with, in the order given,
 * each with what it means there, or `null` for the table's meaning. Without an argument: every code, with the
 * table's meaning.
 */
export function exitCodesHelp(meanings?: Partial<Record<ExitName, string | null>>): string {
  const names = meanings === undefined ? (Object.keys(EXIT_CODE_TABLE) as ExitName[]) : (Object.keys(meanings) as ExitName[]);
  return `Exit codes: ${names.map((name) => `${EXIT[name]} ${meanings?.[name] ?? EXIT_CODE_TABLE[name].meaning}`).join(', ')}.`;
}

/** The exit code for each error code. */
export const EXIT_CODE_BY_ERROR: Readonly<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: EXIT.USAGE,
  UNSUPPORTED_PROTOCOL: EXIT.USAGE,
  INVALID_PATTERN: EXIT.USAGE,
  PSK_MISSING: EXIT.USAGE,
  PSK_INVALID_LENGTH: EXIT.USAGE,
  KEY_MISSING: EXIT.USAGE,
  INVALID_KEY: EXIT.USAGE,
  HANDSHAKE_OUT_OF_ORDER: EXIT.FAILURE,
  HANDSHAKE_ABORTED: EXIT.FAILURE,
  MESSAGE_TRUNCATED: EXIT.FAILURE,
  MESSAGE_TOO_LONG: EXIT.FAILURE,
  DECRYPT_FAILED: EXIT.AUTHENTICATION_FAILED,
  REMOTE_STATIC_MISMATCH: EXIT.AUTHENTICATION_FAILED,
  NONCE_EXHAUSTED: EXIT.FAILURE,
  CIPHER_UNAVAILABLE: EXIT.FAILURE,
  FRAME_INVALID: EXIT.FAILURE,
  PREAMBLE_INVALID: EXIT.FAILURE,
  UNSUPPORTED_VERSION: EXIT.FAILURE,
  UNSUPPORTED_MODE: EXIT.FAILURE,
  AUTHENTICATION_FAILED: EXIT.AUTHENTICATION_FAILED,
  REPLAY_DETECTED: EXIT.AUTHENTICATION_FAILED,
  HANDSHAKE_TIMEOUT: EXIT.UNREACHABLE,
  IDLE_TIMEOUT: EXIT.FAILURE,
  CONNECTION_TRUNCATED: EXIT.FAILURE,
  CONNECTION_CLOSED: EXIT.FAILURE,
  MESSAGE_TOO_LARGE: EXIT.FAILURE,
  TOO_MANY_CONNECTIONS: EXIT.UNREACHABLE,
  SESSION_TIMEOUT: EXIT.FAILURE,
  CONNECTION_FAILED: EXIT.UNREACHABLE,
  TOKEN_MALFORMED: EXIT.BAD_TOKEN,
  TOKEN_VERSION_UNSUPPORTED: EXIT.BAD_TOKEN,
  TOKEN_CHECKSUM_MISMATCH: EXIT.BAD_TOKEN,
  TOKEN_EXPIRED: EXIT.BAD_TOKEN,
  PATH_UNSAFE: EXIT.USAGE,
  FILE_UNREADABLE: EXIT.USAGE,
  TASK_NOT_FOUND: EXIT.NOT_FOUND,
  CLIENT_NOT_FOUND: EXIT.NOT_FOUND,
  TASK_ENDED: EXIT.ENDED,
  CLIENT_ALREADY_REVOKED: EXIT.ENDED,
  DATA_DIR_INSECURE: EXIT.DATA_DIR,
  DATA_DIR_MISSING: EXIT.DATA_DIR,
  DATA_DIR_UNAVAILABLE: EXIT.DATA_DIR,
  DATA_DIR_LOCKED: EXIT.DATA_DIR,
  STORE_CORRUPT: EXIT.DATA_DIR,
  STORE_UNAVAILABLE: EXIT.DATA_DIR,
  PROTOCOL_ERROR: EXIT.FAILURE,
  REJECTED: EXIT.REJECTED,
  DIGEST_MISMATCH: EXIT.DIGEST_MISMATCH,
  APPLY_FAILED: EXIT.APPLY_FAILED,
  COMMAND_FAILED: EXIT.COMMAND_FAILED,
  VERIFY_FAILED: EXIT.VERIFY_FAILED,
  ROLLBACK_UNAVAILABLE: EXIT.NOT_FOUND,
  TRANSFER_INTERRUPTED: EXIT.UNREACHABLE,
  IDENTITY_UNAVAILABLE: EXIT.DATA_DIR,
};
