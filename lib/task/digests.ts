/**
 * Content digests (SPEC.md §4.3): BLAKE2b-256 of each file, and the task digest over the sorted file list, so
 * that client and server agree on exactly what a task holds. Pure; BLAKE2b from libsodium.
 */
import sodium from 'sodium-native';

/** Bytes in a digest. */
export const DIGEST_BYTES = 32;

/** One file of a task as the digest sees it. */
export interface FileEntry {
  path: string;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  size: number;
  /** Hex BLAKE2b-256 of the content. */
  digest: string;
}

/** Hex BLAKE2b-256 of `content`. */
export function fileDigest(content: Uint8Array): string {
  const digest = Buffer.alloc(DIGEST_BYTES);
  sodium.crypto_generichash(digest, content);
  return digest.toString('hex');
}

/** A streaming BLAKE2b-256, for content that arrives in chunks. */
export class StreamingDigest {
  readonly #state = Buffer.alloc(sodium.crypto_generichash_STATEBYTES);
  #size = 0;

  constructor() {
    sodium.crypto_generichash_init(this.#state, null, DIGEST_BYTES);
  }

  update(chunk: Uint8Array): void {
    sodium.crypto_generichash_update(this.#state, chunk);
    this.#size += chunk.byteLength;
  }

  /** Bytes hashed so far. */
  get size(): number {
    return this.#size;
  }

  /** The hex digest; the object must not be used afterwards. */
  digest(): string {
    const digest = Buffer.alloc(DIGEST_BYTES);
    sodium.crypto_generichash_final(this.#state, digest);
    return digest.toString('hex');
  }
}

/**
 * The task digest: BLAKE2b-256 over, for each file sorted by path (byte order of UTF-8), the line
 * `path NUL mode(octal) NUL size(decimal) NUL digest(hex) LF`.
 */
export function taskDigest(files: readonly FileEntry[]): string {
  const lines = [...files]
    .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)))
    .map((file) => `${file.path}\0${file.mode.toString(8)}\0${file.size}\0${file.digest}\n`);
  return fileDigest(Buffer.from(lines.join(''), 'utf8'));
}
