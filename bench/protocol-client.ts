/**
 * A pull at the protocol level, for loading a server: the same channel and update messages as `noise-cfg pull`
 * (SPEC.md §4.5–§4.7), every file's digest checked as it arrives, RESULT applied and the ACK awaited, but nothing
 * written: no output directory, identity file, lock or fsync. `pull()` costs its host three to five times what it
 * costs the server (mostly the file system work that keeps a client host safe), so on a machine whose cores the
 * clients share, real pulls measure the clients; this one leaves the cores to the server.
 */
import { generateKeyPair, connectSecure, decodeToken, type SecureConnection } from '../lib/index.js';
import { StreamingDigest, taskDigest } from '../lib/task/digests.js';
import { encodeMessage, expectMessage, MAX_SERVER_MESSAGE_BYTES, UPDATE_PROTOCOL_VERSION, type Offer } from '../lib/task/messages.js';

/** Pulls the task of `token` as a new client named `name`; returns the server's ACK status, or throws. */
export async function protocolPull(token: string, name: string): Promise<'applied' | 'failed'> {
  const fields = decodeToken(token);
  const isXx = fields.mode === 'xxpsk3';
  const connection = await connectSecure(fields.host, fields.port, {
    mode: fields.mode, taskId: fields.taskId, psk: fields.psk,
    ...(isXx ? { staticKeyPair: generateKeyPair(), serverPublicKey: fields.serverPublicKey! } : {}),
    limits: { maxReceiveMessageBytes: MAX_SERVER_MESSAGE_BYTES },
  });
  try {
    await connection.send(encodeMessage({ type: 'HELLO', body: {
      protocol: UPDATE_PROTOCOL_VERSION, software: 'noise-cfg-bench', name, clientId: isXx ? null : name, have: null, intent: 'pull',
    } }));
    const offer = expectMessage(await connection.receive(), ['OFFER']).body;
    const digestsMatch = await receiveContent(connection, offer);
    await connection.send(encodeMessage({ type: 'RESULT', body: {
      status: digestsMatch ? 'applied' : 'failed', exitCode: null, message: digestsMatch ? 'applied' : 'digest mismatch', digest: offer.digest,
    } }));
    const ack = expectMessage(await connection.receive(), ['ACK']).body;
    await connection.close();
    return ack.status;
  } catch (error) {
    connection.destroy();
    throw error;
  }
}

// Reads the CHUNKs of `offer`, hashing each file's bytes as a real client does; true when every digest matches.
async function receiveContent(connection: SecureConnection, offer: Offer): Promise<boolean> {
  let matches = taskDigest(offer.files) === offer.digest;
  let fileIndex = 0;
  let fileLeft = offer.files[0]?.size ?? 0;
  let digest = new StreamingDigest();
  const finishFiles = (): void => {
    while (fileIndex < offer.files.length && fileLeft === 0) {
      if (digest.digest() !== offer.files[fileIndex]!.digest) matches = false;
      fileIndex++;
      fileLeft = offer.files[fileIndex]?.size ?? 0;
      digest = new StreamingDigest();
    }
  };
  finishFiles();
  let received = 0;
  while (received < offer.totalBytes) {
    let chunk = expectMessage(await connection.receive(), ['CHUNK']).body;
    received += chunk.byteLength;
    if (received > offer.totalBytes) throw new Error('the server sent more content than it offered');
    while (chunk.byteLength > 0) {
      const piece = chunk.subarray(0, fileLeft);
      digest.update(piece);
      fileLeft -= piece.byteLength;
      chunk = chunk.subarray(piece.byteLength);
      finishFiles();
    }
  }
  return matches;
}
