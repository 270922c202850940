/**
 * How a server tells a connection it has no room for it (SPEC.md §2.2, §2.4): the clear rejection frame with reason
 * TOO_MANY_CONNECTIONS, then FIN, while whatever the peer sends is read and dropped unlooked-at, so that the close
 * is a FIN and not an RST (an RST can make the peer's kernel discard the frame before the client reads it). The
 * socket lives at most REFUSAL_LINGER_MS after that.
 */
import type { Socket } from 'node:net';
import { encodeFrame } from './framing.js';
import { REFUSAL_LINGER_MS } from './limits.js';
import { encodeRejection } from './preamble.js';

/** The busy frame: `00 06 4e 43 46 47 01 04`. */
export const BUSY_FRAME: Buffer = encodeFrame(encodeRejection('TOO_MANY_CONNECTIONS'));

function ignore(): void {
  // Input of a refused peer is dropped unread; errors end the socket anyway.
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** Sends the busy frame and closes `socket` as described above; `onClosed` runs once it has closed. */
export function refuseAsBusy(socket: Socket, onClosed?: () => void): void {
  socket.on('error', ignore);
  socket.on('data', ignore);
  socket.once('end', () => socket.destroy());
  const timer = setTimeout(destroySocket, REFUSAL_LINGER_MS, socket);
  socket.once('close', () => {
    clearTimeout(timer);
    onClosed?.();
  });
  socket.resume();
  socket.end(BUSY_FRAME);
}

/** Sends the busy frame and destroys `socket` at once: the cheap fallback when too many refused sockets linger. */
export function refuseAsBusyNow(socket: Socket): void {
  socket.on('error', ignore);
  socket.end(BUSY_FRAME);
  socket.destroy();
}
