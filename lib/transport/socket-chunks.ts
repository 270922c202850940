/**
 * Where a socket's received bytes go. Sockets this module connects read into one buffer shared by all of them
 * (Node's `onread`), so receiving allocates nothing per read; every other socket uses 'data' events. Either way
 * a consumer subscribes with onChunks() and gets each chunk as LentBytes (lent-bytes.ts): the type lets it read
 * the chunk during the call and keep only a copy, since the next read overwrites the shared buffer. Bytes that
 * arrive while nobody is subscribed are copied and kept for the next subscriber.
 */
import net, { type Socket } from 'node:net';
import { lend, type LentBytes } from './lent-bytes.js';
import { SHARED_READ_BYTES } from './limits.js';

/** Receives one chunk, called with the socket as `this`; the chunk is lent for the call. */
export type ChunkHandler = (this: Socket, chunk: LentBytes) => void;

// One buffer serves every socket: reads happen one at a time on the event loop, and each is consumed before the
// next read fills the buffer again.
const sharedReadBuffer = Buffer.allocUnsafe(SHARED_READ_BYTES);

interface SharedReader {
  handler: ChunkHandler | null;
  /** Copies of what arrived while nobody was subscribed. */
  unread: Buffer[];
}

const sharedReaders = new WeakMap<Socket, SharedReader>();

/** net.connect for a channel client: half-open allowed, reads into the shared buffer. */
export function connectReadingShared(host: string, port: number): Socket {
  const reader: SharedReader = { handler: null, unread: [] };
  const socket: Socket = net.connect({
    host,
    port,
    allowHalfOpen: true,
    onread: {
      buffer: sharedReadBuffer,
      callback: (bytes: number, buffer: Uint8Array): boolean => {
        const chunk = (buffer as Buffer).subarray(0, bytes);
        if (reader.handler !== null) reader.handler.call(socket, lend(chunk));
        else reader.unread.push(Buffer.from(chunk));
        return true;
      },
    },
  });
  sharedReaders.set(socket, reader);
  return socket;
}

/** Sends the socket's received bytes to `handler` from now on; returns the function that stops it. */
export function onChunks(socket: Socket, handler: ChunkHandler): () => void {
  const reader = sharedReaders.get(socket);
  if (reader === undefined) {
    // A 'data' chunk is the handler's to keep, so lending it is only stricter; the handler is added as it is (a
    // LentBytes is the Buffer at run time) so that shared handlers stay shared, with no closure per socket.
    const onData = handler as unknown as (this: Socket, chunk: Buffer) => void;
    socket.on('data', onData);
    return () => {
      socket.off('data', onData);
    };
  }
  reader.handler = handler;
  for (const chunk of reader.unread.splice(0)) handler.call(socket, lend(chunk));
  return () => {
    if (reader.handler === handler) reader.handler = null;
  };
}
