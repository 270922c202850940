/**
 * The transport layer's public face (SPEC.md §2): what the task layer, the REST API and the CLI need of the
 * channel. Re-exports only; the files behind it stay free to move.
 */
export { SecureServer, type SecureServerOptions, type ChannelEvent } from './secure-server.js';
export { connectSecure, secureClientSocket, acceptSecureSocket, rawSecureSocket, openSocket } from './secure-socket.js';
export type { ClientChannelOptions, ServerChannelOptions, RawChannelOptions, TaskKey } from './channel-options.js';
export {
  connectSecureWithRetry,
  retrying,
  retryReasonOf,
  describeRetry,
  type RetryOptions,
  type RetryNotice,
  type RetryReason,
} from './connect-with-retry.js';
export { SecureConnection, type ConnectionInfo } from './secure-connection.js';
export { DEFAULT_LIMITS, DEFAULT_RETRY_FOR_MS, MAX_RECORD_BODY_BYTES, resolveLimits, type ChannelLimits, type ConnectionCaps } from './limits.js';
export { RateLimitedLog, type RateLimitedLogOptions } from './rate-limited-log.js';
export { ReplayCache } from './replay-cache.js';
export type { ChannelMode } from './preamble.js';
export { connectRaw, RawServer, type RawServerOptions } from './raw-endpoints.js';
export { PROTOCOL_BY_MODE } from './channel-options.js';
