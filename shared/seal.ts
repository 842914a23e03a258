/**
 * Seals: the storage is untrusted (contract §14), so what grants access is authenticated by a key that is not
 * in DynamoDB. A seal is an HMAC-SHA-256 under a KMS HMAC key in AWS (`GenerateMac` by the management function
 * only; readers hold `kms:VerifyMac` alone, so a compromised reader cannot forge) or under a local key file
 * (`.keysmith/seal-key`, mode 0600) on a laptop.
 *
 * What is sealed is a SHA-256 digest of a canonical encoding, prefixed with what it is a digest of, so one
 * MAC call covers a state of any size (KMS takes messages up to 4 KiB) and no seal can stand for another kind.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { GenerateMacCommand, type KMSClient, VerifyMacCommand } from '@aws-sdk/client-kms';

/** Makes and checks seals. */
export interface SealKey {
  /** The seal of `message`. */
  seal(message: string): Promise<Uint8Array>;
  /** Whether `seal` is the seal of `message`. Throws only when the key service fails (then nothing is trusted). */
  verify(message: string, seal: Uint8Array): Promise<boolean>;
}

/** The message sealed for a canonical value: its kind and the SHA-256 of its canonical JSON. */
export function sealMessage(kind: string, canonical: unknown): string {
  return `keysmith-seal-v1:${kind}:${createHash('sha256').update(JSON.stringify(canonical)).digest('base64url')}`;
}

/** A local HMAC-SHA-256 key (32 bytes): the stand-in for KMS on a laptop and in tests. */
export class LocalSealKey implements SealKey {
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new Error('the local seal key must be 32 bytes');
    this.key = Buffer.from(key);
  }

  async seal(message: string): Promise<Uint8Array> {
    return createHmac('sha256', this.key).update(message).digest();
  }

  async verify(message: string, seal: Uint8Array): Promise<boolean> {
    const expected = createHmac('sha256', this.key).update(message).digest();
    return seal.length === expected.length && timingSafeEqual(expected, seal);
  }
}

/** Options of {@link KmsSealKey}. */
export interface KmsSealKeyOptions {
  /** A KMS client (the bare `KMSClient`: readers bundle only the two commands). */
  kms: KMSClient;
  /** The ARN of the HMAC_256 KMS key. */
  keyId: string;
  /** Seals that verified, remembered so a re-read of an unchanged item costs no KMS call. @default 10000 */
  maxRememberedSeals?: number;
}

/**
 * Seals under a KMS HMAC key. A verified (message, seal) pair is remembered in a bounded set: the same item read
 * again (a cache refresh of an unchanged client) is checked in memory. A failed check is never remembered.
 */
export class KmsSealKey implements SealKey {
  private readonly kms: KMSClient;
  private readonly keyId: string;
  private readonly max: number;
  private readonly verified = new Set<string>();

  constructor({ kms, keyId, maxRememberedSeals = 10_000 }: KmsSealKeyOptions) {
    this.kms = kms;
    this.keyId = keyId;
    this.max = maxRememberedSeals;
  }

  async seal(message: string): Promise<Uint8Array> {
    const { Mac } = await this.kms.send(
      new GenerateMacCommand({ KeyId: this.keyId, MacAlgorithm: 'HMAC_SHA_256', Message: Buffer.from(message) }),
    );
    if (!Mac) throw new Error('KMS GenerateMac returned no MAC');
    return Mac;
  }

  async verify(message: string, seal: Uint8Array): Promise<boolean> {
    // An HMAC-SHA-256 is 32 bytes: anything else is no seal of ours, and KMS would refuse it as a bad request.
    if (seal.length !== 32) return false;
    const remembered = `${message}|${Buffer.from(seal).toString('base64')}`;
    if (this.verified.has(remembered)) return true;
    let valid: boolean;
    try {
      const { MacValid } = await this.kms.send(
        new VerifyMacCommand({ KeyId: this.keyId, MacAlgorithm: 'HMAC_SHA_256', Message: Buffer.from(message), Mac: seal }),
      );
      valid = MacValid === true;
    } catch (error) {
      // KMS answers a MAC that does not match with this exception; anything else is the key service failing.
      if ((error as { name?: string }).name === 'KMSInvalidMacException') return false;
      throw error;
    }
    if (valid) {
      this.verified.add(remembered);
      if (this.verified.size > this.max) this.verified.delete(this.verified.values().next().value as string);
    }
    return valid;
  }
}
