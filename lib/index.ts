/** The public surface of noise-cfg: re-exports only. */
export { NoiseCfgError, ERROR_CODES, isNoiseCfgError, type ErrorCode } from './errors.js';
export { VERSION } from './version.js';
export { HandshakeState, PSK_BYTES, type HandshakeOptions } from './noise/handshake-state.js';
export { TransportState, MAX_MESSAGE_BYTES, MAX_TRANSPORT_PLAINTEXT_BYTES } from './noise/transport-state.js';
export { DH_BYTES } from './noise/index.js';
export { CipherState } from './noise/cipher-state.js';
export { XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME, resolveProtocol, type NoiseProtocol } from './noise/protocols.js';
export { generateKeyPair, keyPairFromSecretKey, keyFromHex, type KeyPair } from './noise/keys.js';
export { SecureConnection, type ConnectionInfo } from './transport/secure-connection.js';
export {
  connectSecure,
  secureClientSocket,
  acceptSecureSocket,
  rawSecureSocket,
  type ClientChannelOptions,
  type ServerChannelOptions,
  type RawChannelOptions,
  type TaskKey,
} from './transport/secure-socket.js';
export {
  connectSecureWithRetry,
  retryReasonOf,
  describeRetry,
  DEFAULT_RETRY_FOR_MS,
  type RetryOptions,
  type RetryNotice,
  type RetryReason,
} from './transport/connect-with-retry.js';
export { SecureServer, type SecureServerOptions, type ChannelEvent } from './transport/secure-server.js';
export { DEFAULT_LIMITS, type ChannelLimits, type ConnectionCaps } from './transport/limits.js';
export { ReplayCache } from './transport/replay-cache.js';
export { connectRaw, RawServer, type RawServerOptions } from './transport/raw-endpoints.js';
export { PROTOCOL_BY_MODE } from './transport/channel-options.js';
export { type ChannelMode } from './transport/preamble.js';
export { encodeToken, decodeToken, checkTokenExpiry, describeToken, TOKEN_PREFIX, type TokenFields, type TokenMode } from './token/token.js';
export { generateTaskId, isTaskId } from './token/task-id.js';
export { TaskServer, DEFAULT_RETAIN_MS, type TaskServerOptions, type LogRecord } from './task/server.js';
export { TaskAdmin, type WatchOptions, type DeletedTasks } from './task/admin.js';
export { MAX_CLIENT_MESSAGE_BYTES, MAX_SERVER_MESSAGE_BYTES } from './task/messages.js';
export { TASK_MODES, DEFAULT_TASK_MODE, type TaskMode } from './task/task-mode.js';
export { pull, type PullOptions, type PullResult, type Changes } from './task/client.js';
export { DEFAULT_MAX_FILE_MODE, rollBackOutput, type RollbackOutcome, type AppliedState, type AppliedFile } from './task/apply.js';
export { DEFAULT_LOCK_TIMEOUT_MS } from './task/output-lock.js';
export { readTaskFiles, type TaskFileInput } from './task/file-set.js';
export { createSecretFile } from './task/secret-files.js';
export { parseDurationSeconds, DEFAULT_TTL_SECONDS, type TaskView, type ClientView, type TaskState } from './task/task.js';
export { DEFAULT_PORT, type CreatedTask, type CreateTaskOptions, type AdvertisedAddress, type Operator, type TaskToken, type PruneOptions } from './task/operator.js';
export { type TaskEvent } from './task/store.js';
export { ApiClient } from './api/client.js';
export { startApiServer, createApiApp, DEFAULT_API_BODY_LIMIT_BYTES, type ApiServerOptions, type ApiLogRecord } from './api/server.js';
export { buildOpenApiDocument } from './api/openapi.js';
export { type TaskProgress, type TaskStreamEvent } from './task/task.js';
export { escapeUnprintable, hasUnprintableCharacters, toTerminalSafeJson } from './task/printable.js';
