/**
 * The two {@link TokenSigner}s (contract §9): a KMS asymmetric key in AWS (RSA_2048, RSASSA_PKCS1_V1_5_SHA_256: the
 * private key never leaves KMS; the public key is read with `GetPublicKey` once per container), and a local RSA key
 * file for `npm start`. Both sign the SHA-256 digest of the JWS signing input.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { GetPublicKeyCommand, type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { type IssuerKey, issuerKey, issuerKeyFromSpki, type TokenSigner } from './access-token.ts';

/** Signs with a KMS key: one `Sign` call per token, one `GetPublicKey` per container. */
export class KmsTokenSigner implements TokenSigner {
  private publicKey: Promise<IssuerKey> | undefined;

  constructor(
    private readonly kms: KMSClient,
    private readonly keyId: string,
  ) {}

  key(): Promise<IssuerKey> {
    this.publicKey ??= this.kms.send(new GetPublicKeyCommand({ KeyId: this.keyId })).then(
      (answer) => {
        if (!answer.PublicKey) throw new TypeError('KMS GetPublicKey answered without a public key');
        // Refuses a key that is not RSA ≥ 2048 with e = 65537 (a misconfigured ARN fails here, not at verification).
        return issuerKeyFromSpki(answer.PublicKey);
      },
      (error: unknown) => {
        // Not cached: the next call asks again (a throttled cold start must not poison the container).
        this.publicKey = undefined;
        throw error;
      },
    );
    return this.publicKey;
  }

  async sign(signingInput: Buffer): Promise<Buffer> {
    const answer = await this.kms.send(
      new SignCommand({
        KeyId: this.keyId,
        Message: createHash('sha256').update(signingInput).digest(),
        MessageType: 'DIGEST',
        SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256',
      }),
    );
    if (!answer.Signature) throw new Error('KMS Sign answered without a signature');
    return Buffer.from(answer.Signature);
  }
}

/** Signs with a local RSA private key (PKCS#8 PEM), the stand-in for the KMS key on a laptop. */
export class LocalTokenSigner implements TokenSigner {
  private readonly issuer: IssuerKey;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.type !== 'private') throw new TypeError('a local token-signing key must be a private key');
    this.issuer = issuerKey(createPublicKey(privateKey));
  }

  /** From the PEM text of a PKCS#8 RSA private key. */
  static fromPem(pem: string): LocalTokenSigner {
    return new LocalTokenSigner(createPrivateKey({ key: pem, format: 'pem' }));
  }

  /** A new RSA 2048 key's PKCS#8 PEM (what `npm start` writes once under `.keysmith/`). */
  static generatePem(): string {
    return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  }

  async key(): Promise<IssuerKey> {
    return this.issuer;
  }

  async sign(signingInput: Buffer): Promise<Buffer> {
    return sign('sha256', signingInput, this.privateKey);
  }
}
