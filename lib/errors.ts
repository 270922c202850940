/**
 * NoiseCfgError and the closed table of error codes (SPEC.md "Error codes").
 * Codes are mapped to exit codes only in cli/ and to HTTP statuses only in lib/api.
 */

/** Every error code noise-cfg can raise, with the one-line meaning documented in SPEC.md. */
export const ERROR_CODES = {
  INVALID_ARGUMENT: 'an argument to a public function is missing or malformed',
  UNSUPPORTED_PROTOCOL: 'the Noise protocol name is malformed or names a pattern, modifier or primitive this build does not support',
  INVALID_PATTERN: 'the handshake pattern breaks a validity rule (Noise rev. 34 §7.3, §9.3)',
  PSK_MISSING: 'the pattern has psk tokens but fewer pre-shared keys were supplied',
  PSK_INVALID_LENGTH: 'a pre-shared key is not exactly 32 bytes',
  KEY_MISSING: 'the pattern needs a static or remote static key that was not supplied',
  INVALID_KEY: 'a key has the wrong length, or a DH with it gave the all-zero result',
  HANDSHAKE_OUT_OF_ORDER: 'a handshake message was written or read when it was the other side\'s turn, or after the handshake finished',
  HANDSHAKE_ABORTED: 'the handshake state was used after an earlier failure ended it',
  MESSAGE_TRUNCATED: 'a Noise message is shorter than its pattern requires',
  MESSAGE_TOO_LONG: 'a Noise message would exceed 65535 bytes (a transport plaintext, 65519)',
  DECRYPT_FAILED: 'an AEAD tag did not verify: wrong key, wrong PSK, or tampered bytes',
  REMOTE_STATIC_MISMATCH: 'the remote static key differs from the one expected (pin)',
  NONCE_EXHAUSTED: 'the cipher nonce reached 2^64-1, which is reserved; the session must end',
  CIPHER_UNAVAILABLE: 'the cipher state has no key, or this side may not send in a one-way pattern',
  FRAME_INVALID: 'a frame length exceeds the limit for this stage, or a record inside a frame is malformed',
  PREAMBLE_INVALID: 'the clear connection preamble is malformed (magic, length or task id)',
  UNSUPPORTED_VERSION: 'the peer speaks a protocol version this build does not',
  UNSUPPORTED_MODE: 'the preamble names a mode other than xxpsk3 or nnpsk0',
  AUTHENTICATION_FAILED: 'the handshake failed: wrong token or PSK, unknown or ended task, or tampered bytes',
  REPLAY_DETECTED: 'a first handshake message repeats an ephemeral key seen recently (a replay)',
  HANDSHAKE_TIMEOUT: 'the handshake did not finish within the handshake deadline',
  IDLE_TIMEOUT: 'nothing arrived on an established connection within the idle timeout',
  CONNECTION_TRUNCATED: 'the connection ended (FIN or RST) before the authenticated end message',
  CONNECTION_CLOSED: 'the connection is already closed',
  MESSAGE_TOO_LARGE: 'an application message exceeds the configured maximum message size',
  TOO_MANY_CONNECTIONS: 'the server is busy: it is at a connection limit (strangers, per source address, per task or per identity); retry later',
  SESSION_TIMEOUT: 'the peer did not send its next update message within that step\'s deadline, or the connection outlived its maximum lifetime',
  CONNECTION_FAILED: 'the TCP connection could not be made (refused, unreachable, or name not found)',
  TOKEN_MALFORMED: 'the text is not a noise-cfg token, or its fields do not parse',
  TOKEN_VERSION_UNSUPPORTED: 'the token is of a version this build cannot read',
  TOKEN_CHECKSUM_MISMATCH: 'the token\'s checksum does not match: it was mistyped or truncated',
  TOKEN_EXPIRED: 'the token\'s expiry time has passed',
  PATH_UNSAFE: 'a file path is absolute, climbs out with .., or is otherwise unsafe to write under the output directory',
  FILE_UNREADABLE: 'a file named for a task cannot be read, or a limit on task files is exceeded',
  TASK_NOT_FOUND: 'no task has that id',
  TASK_ENDED: 'the task has already ended (expired, cancelled or completed)',
  CLIENT_NOT_FOUND: 'the task has no client with that identity',
  CLIENT_ALREADY_REVOKED: 'that client of the task is already revoked',
  DATA_DIR_INSECURE: 'a key file in the data directory is readable by group or others, or has the wrong size',
  DATA_DIR_MISSING: 'there is no data directory at the path given (only serve creates one)',
  DATA_DIR_UNAVAILABLE: 'the data directory or a file in it cannot be used: permission, read-only or full file system, not a directory',
  DATA_DIR_LOCKED: 'another running server holds the data directory',
  STORE_CORRUPT: 'the task database is damaged or of a newer schema; it is never reset silently',
  STORE_UNAVAILABLE: 'the task database cannot be opened or written now: read-only, busy, locked, full, or not permitted',
  PROTOCOL_ERROR: 'a message of the update protocol is malformed or out of place',
  REJECTED: 'the server refused the pull (expired, cancelled, full, revoked, completed or unsupported)',
  DIGEST_MISMATCH: 'received content does not match the digest the server announced',
  APPLY_FAILED: 'the files could not be written under the output directory',
  COMMAND_FAILED: 'the --exec command exited non-zero or could not run',
  VERIFY_FAILED: 'the --verify command rejected the staged files (exited non-zero or could not run); nothing changed under --out',
  ROLLBACK_UNAVAILABLE: 'the output directory holds no applied version, or none before the current one, to go back to',
  TRANSFER_INTERRUPTED: 'the server closed the connection in the middle of sending the files (it stopped or restarted); nothing was applied; retry',
  IDENTITY_UNAVAILABLE: 'the client identity directory or a file in it cannot be created, read or written (permissions, a file in the way, a read-only file system)',
} as const;

/** A closed union of every error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * The codes only the REST API answers with (SPEC.md §6, §8), for failures of the HTTP request itself rather than
 * of an operation: each with its meaning and the error code an API client (ApiClient) reports it as, so that a
 * command through --api fails as it would on the data directory. Their HTTP statuses are in lib/api.
 */
export const API_ERROR_CODES = {
  UNAUTHORIZED: { meaning: 'the bearer token is missing or wrong', reportedAs: 'AUTHENTICATION_FAILED' },
  INVALID_REQUEST: { meaning: 'a body, path parameter or query fails its JSON schema, or the body is not JSON', reportedAs: 'INVALID_ARGUMENT' },
  BODY_TOO_LARGE: { meaning: 'the request body is over the size limit', reportedAs: 'INVALID_ARGUMENT' },
  NOT_FOUND: { meaning: 'there is no such route', reportedAs: 'INVALID_ARGUMENT' },
  INTERNAL: { meaning: 'an error the server did not foresee (logged with its code, never described to the client)', reportedAs: 'INVALID_ARGUMENT' },
} as const satisfies Record<string, { meaning: string; reportedAs: ErrorCode }>;

/** A closed union of the REST API's own codes. */
export type ApiErrorCode = keyof typeof API_ERROR_CODES;

/** The only error class noise-cfg throws. `message` is safe to show a user: it never holds a secret. */
export class NoiseCfgError extends Error {
  /** Which check failed; stable across releases. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NoiseCfgError';
    this.code = code;
  }
}

/** True when `error` is a NoiseCfgError, optionally with the given code. */
export function isNoiseCfgError(error: unknown, code?: ErrorCode): error is NoiseCfgError {
  return error instanceof NoiseCfgError && (code === undefined || error.code === code);
}
