/**
 * Records inside transport messages (SPEC.md §2.5): the first plaintext byte says what the rest is. Messages are
 * split into FRAGMENT records and a FINAL one; END closes the channel with authentication; REKEY tells the peer
 * that the sender's key changes after this record; READY is the server's first record. Pure.
 */
import { NoiseCfgError } from '../errors.js';
import { MAX_RECORD_BODY_BYTES } from './limits.js';

export { MAX_RECORD_BODY_BYTES };

/** Record type bytes. */
export const RECORD_TYPES = { FRAGMENT: 0x00, FINAL: 0x01, END: 0x02, REKEY: 0x03, READY: 0x04 } as const;
/** A record type name. */
export type RecordType = keyof typeof RECORD_TYPES;

const TYPE_BY_BYTE = new Map<number, RecordType>(Object.entries(RECORD_TYPES).map(([name, byte]) => [byte, name as RecordType]));

/** The plaintext of one record. */
export function encodeRecord(type: RecordType, body: Uint8Array = Buffer.alloc(0)): Buffer {
  if (body.byteLength > MAX_RECORD_BODY_BYTES) {
    throw new NoiseCfgError('MESSAGE_TOO_LONG', `record body of ${body.byteLength} bytes exceeds ${MAX_RECORD_BODY_BYTES}`);
  }
  const plaintext = Buffer.allocUnsafe(1 + body.byteLength);
  plaintext[0] = RECORD_TYPES[type];
  plaintext.set(body, 1);
  return plaintext;
}

/** Splits a decrypted plaintext into its type and body. Throws FRAME_INVALID for an unknown type or a body where none belongs. */
export function decodeRecord(plaintext: Buffer): { type: RecordType; body: Buffer } {
  const type = plaintext.byteLength === 0 ? undefined : TYPE_BY_BYTE.get(plaintext[0]!);
  if (type === undefined) {
    throw new NoiseCfgError('FRAME_INVALID', plaintext.byteLength === 0 ? 'empty record' : `unknown record type ${plaintext[0]}`);
  }
  const body = plaintext.subarray(1);
  if (type !== 'FRAGMENT' && type !== 'FINAL' && body.byteLength > 0) {
    throw new NoiseCfgError('FRAME_INVALID', `${type} record must be empty, has ${body.byteLength} bytes`);
  }
  return { type, body };
}
