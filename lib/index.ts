/**
 * The public surface of noise-cfg: re-exports only, in the groups below. A layer's names come through its face
 * (lib/<layer>/index.ts) where the face has them; the task server and the pull side come from their files, since
 * the task face serves the REST API alone.
 */

// Errors and the version: the one error class with its closed table of codes.
export { NoiseCfgError, isNoiseCfgError, ERROR_CODES, type ErrorCode } from './errors.js';
export { VERSION } from './version.js';

// Noise core (SPEC.md §1): the handshake state of any pattern with pskN modifiers, its transport, and keys.
export {
  HandshakeState, TransportState, XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME, PSK_BYTES, DH_BYTES, generateKeyPair, keyPairFromSecretKey, keyFromHex,
  type HandshakeOptions, type KeyPair,
} from './noise/index.js';

// Channel (SPEC.md §2): a secure connection over TCP or a net.Socket, framed with preamble and END, or raw.
export {
  connectSecure, connectSecureWithRetry, secureClientSocket, acceptSecureSocket, rawSecureSocket, SecureServer, SecureConnection, ReplayCache,
  type ClientChannelOptions, type ServerChannelOptions, type RawChannelOptions, type SecureServerOptions, type ChannelEvent, type ChannelLimits, type ChannelMode, type RetryOptions,
} from './transport/index.js';
// Raw mode's two ends and the protocol of each mode, from their files: the transport face does not carry them yet.
export { connectRaw, RawServer, type RawServerOptions } from './transport/index.js';
export { PROTOCOL_BY_MODE } from './transport/index.js';

// Token (SPEC.md §3): the ncfg1 token of a task, encoded, decoded and shown without its PSK.
export { encodeToken, decodeToken, describeToken, type TokenFields } from './token/index.js';

// Task server and pull (SPEC.md §4): serve tasks from a data directory, pull and apply one, roll back.
export { TaskServer, type TaskServerOptions, type LogRecord } from './task/server.js';
export { parseStoreLocation, describeStoreLocation, type StoreLocation } from './task/store-location.js';
export { FLEET_KEY_FILES } from './task/data-dir.js';
// Several server processes on one data directory (serve --workers, SPEC.md §4.10): the primary and a worker's role.
export {
  WorkerPool, parseWorkerCount, workerRole, reportWorkerReady, reportWorkerFailed, MAX_WORKERS, type WorkerPoolOptions, type WorkerReady,
} from './task/worker-pool.js';
export { pull, type PullOptions, type PullResult } from './task/client.js';
export { rollBackOutput, type RollbackOutcome } from './task/apply.js';
export { DEFAULT_LOCK_TIMEOUT_MS } from './task/output-lock.js';
export { readTaskFiles } from './task/file-set.js';
export { createSecretFile } from './task/secret-files.js';
export { parseDurationSeconds } from './task/task.js';
export { TASK_MODES, DEFAULT_TASK_MODE, type TaskMode } from './task/index.js';

// Operator and REST (SPEC.md §8): one Operator, on the data directory (TaskAdmin) or through the API (ApiClient).
export {
  TaskAdmin,
  type Operator, type AdvertisedAddress, type CreateTaskOptions, type CreatedTask, type TaskToken, type DeletedTasks, type PruneOptions, type WatchOptions,
  type TaskFileInput, type TaskView, type TaskStreamEvent, type TaskProgress,
} from './task/index.js';
export { ApiClient } from './api/client.js';
export { startApiServer, type ApiServerOptions, type ApiLogRecord } from './api/server.js';

// Terminal safety: what the CLI prints of peer-chosen text, escaped.
export { escapeUnprintable, toTerminalSafeJson } from './task/printable.js';
