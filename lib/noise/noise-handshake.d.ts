// Only the members of noise-handshake (CommonJS, untyped) that lib/noise uses.
declare module 'noise-handshake/dh.js' {
  export interface NoiseHandshakeKeyPair { publicKey: Buffer; secretKey: Buffer }
  /** X25519 key pair; with `secretKey`, derives the public key from it. */
  export function generateKeyPair(secretKey?: Uint8Array): NoiseHandshakeKeyPair;
  /** X25519(secretKey, publicKey); throws a plain Error when the result is all zeros. */
  export function dh(publicKey: Uint8Array, keyPair: { secretKey: Uint8Array }): Buffer;
  export const DHLEN: number;
}

declare module 'noise-handshake' {
  import type { NoiseHandshakeKeyPair } from 'noise-handshake/dh.js';
  /** The package's own HandshakeState: a peer for interop tests only. */
  export default class NoiseHandshake {
    constructor(pattern: string, initiator: boolean, staticKeyPair?: NoiseHandshakeKeyPair | null, options?: { psk?: Uint8Array });
    s: NoiseHandshakeKeyPair;
    e: NoiseHandshakeKeyPair | null;
    rs: Buffer | null;
    complete: boolean;
    /** Sending key despite what the package README says. */
    tx: Buffer | null;
    /** Receiving key. */
    rx: Buffer | null;
    hash: Buffer | null;
    initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void;
    send(payload?: Uint8Array): Buffer;
    recv(message: Uint8Array): Buffer;
  }
}

declare module 'noise-handshake/cipher.js' {
  export default class NoiseHandshakeCipher {
    constructor(key: Uint8Array);
    encrypt(plaintext: Uint8Array, additionalData?: Uint8Array): Buffer;
    decrypt(ciphertext: Uint8Array, additionalData?: Uint8Array): Buffer;
  }
}
