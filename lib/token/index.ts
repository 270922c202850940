/**
 * The token codec's public face (SPEC.md §3): what the task layer and users need to mint, read and check a task
 * token and its task id. Re-exports only.
 */
export { encodeToken, decodeToken, checkTokenExpiry, describeToken, TOKEN_PREFIX, type TokenFields, type TokenMode } from './token.js';
export { generateTaskId, isTaskId } from './task-id.js';
