/**
 * The client handshake on one connected socket (SPEC.md §2.3): writes the ClientHandshake state machine's first
 * flight, feeds it the server's bytes and its close, writes what it answers, and owns the handshake deadline. On
 * success the connection takes the socket over within the same event, so that no byte falls between the two.
 */
import type { Socket } from 'node:net';
import { NoiseCfgError } from '../errors.js';
import type { HandshakeResult } from './channel-handshake.js';
import type { ClientHandshake, ClientHandshakeStep } from './client-handshake.js';
import type { SecureConnection } from './secure-connection.js';
import { onChunks } from './socket-chunks.js';

/**
 * Runs `handshake` on `socket` within `timeoutMs` and resolves with `connect(result)`. On any failure the socket
 * is closed with nothing sent and the promise rejects with the machine's error, or HANDSHAKE_TIMEOUT.
 */
export function runClientHandshake(socket: Socket, handshake: ClientHandshake, timeoutMs: number, connect: (result: HandshakeResult) => SecureConnection): Promise<SecureConnection> {
  return new Promise((resolve, reject) => {
    let isOver = false;
    // Bytes that arrived before the handshake subscribed (a busy frame sent at accept) are delivered while it
    // subscribes, so stopChunks may be needed before onChunks returns it.
    let stopChunks: (() => void) | null = null;
    const apply = (step: ClientHandshakeStep): void => {
      if (isOver) return;
      if (step.status !== 'failed' && step.send !== undefined) socket.write(step.send);
      if (step.status === 'waiting') return;
      isOver = true;
      clearTimeout(timer);
      stopChunks?.();
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (step.status === 'done') {
        try {
          resolve(connect(step.result));
        } catch (error) {
          socket.destroy();
          reject(error as Error);
        }
        return;
      }
      // Silent close toward the peer: no reason is sent for a failed handshake.
      if (!socket.writableEnded) socket.destroy();
      reject(step.error);
    };
    const onEnd = (): void => apply(handshake.peerClosed());
    const onError = (error: Error): void => apply(handshake.peerClosed(error));
    const timer = setTimeout(() => {
      const error = new NoiseCfgError('HANDSHAKE_TIMEOUT', `handshake did not finish within ${timeoutMs} ms`);
      handshake.abort(error);
      apply({ status: 'failed', error });
    }, timeoutMs);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    apply(handshake.start());
    if (isOver) return;
    stopChunks = onChunks(socket, (chunk) => apply(handshake.receive(chunk)));
    if (isOver) stopChunks();
  });
}
