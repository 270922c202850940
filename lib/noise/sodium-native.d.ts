// Only the members of sodium-native that noise-cfg uses; its published types lag the library.
declare module 'sodium-native' {
  type Bytes = Uint8Array;
  const sodium: {
    crypto_aead_chacha20poly1305_ietf_encrypt(
      ciphertext: Bytes, message: Bytes, additionalData: Bytes | null, secretNonce: null, publicNonce: Bytes, key: Bytes,
    ): number;
    crypto_aead_chacha20poly1305_ietf_decrypt(
      message: Bytes, secretNonce: null, ciphertext: Bytes, additionalData: Bytes | null, publicNonce: Bytes, key: Bytes,
    ): number;
    crypto_aead_aes256gcm_is_available?: () => boolean;
    crypto_generichash(output: Bytes, input: Bytes, key?: Bytes): void;
    crypto_generichash_batch(output: Bytes, inputs: Bytes[], key?: Bytes): void;
    crypto_generichash_init(state: Bytes, key: Bytes | null, outputLength: number): void;
    crypto_generichash_update(state: Bytes, input: Bytes): void;
    crypto_generichash_final(state: Bytes, output: Bytes): void;
    crypto_generichash_STATEBYTES: number;
    crypto_hash_sha256(output: Bytes, input: Bytes): void;
    crypto_hash_sha256_init(state: Bytes): void;
    crypto_hash_sha256_update(state: Bytes, input: Bytes): void;
    crypto_hash_sha256_final(state: Bytes, output: Bytes): void;
    crypto_hash_sha256_STATEBYTES: number;
    crypto_hash_sha512(output: Bytes, input: Bytes): void;
    crypto_hash_sha512_init(state: Bytes): void;
    crypto_hash_sha512_update(state: Bytes, input: Bytes): void;
    crypto_hash_sha512_final(state: Bytes, output: Bytes): void;
    crypto_hash_sha512_STATEBYTES: number;
    crypto_scalarmult(output: Bytes, secretKey: Bytes, publicKey: Bytes): void;
    crypto_scalarmult_base(output: Bytes, secretKey: Bytes): void;
    randombytes_buf(output: Bytes): void;
    sodium_memzero(buffer: Bytes): void;
    sodium_memcmp(a: Bytes, b: Bytes): boolean;
  };
  export default sodium;
}
