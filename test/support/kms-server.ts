/**
 * A KMS stand-in server for code that runs in another process (a bundled handler run as Lambda runs it), where
 * test/support/kms.ts's in-process mock cannot reach. It speaks KMS's wire protocol (AWS JSON 1.1 over HTTP,
 * `X-Amz-Target: TrentService.<Op>`), so a real `KMS`/`KMSClient` pointed at it with `endpoint` (or
 * `AWS_ENDPOINT_URL_KMS`) works unchanged, including the Encryption SDK's KMS keyring. It does not check SigV4
 * signatures; it records the caller's access key id from the `Authorization` header so a test can tell callers apart.
 *
 * Operations: GenerateDataKey, Encrypt, Decrypt (the encryption context is bound into the ciphertext, so a wrong one
 * fails with InvalidCiphertextException), GenerateMac and VerifyMac (HMAC_SHA_256; a MAC that does not match is
 * KMSInvalidMacException, as KMS answers), Sign and GetPublicKey (RSA_2048). Errors come back as KMS sends them:
 * status 400 with `{ __type, message }`. Keys are registered by the test, or created on first use if asked to.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  constants as cryptoConstants,
  generateKeyPairSync,
  type KeyObject,
  privateEncrypt,
  randomBytes,
  randomUUID,
  sign,
  timingSafeEqual,
} from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The kinds of key the stand-in serves, by KMS KeySpec. */
export type KmsKeySpec = 'SYMMETRIC_DEFAULT' | 'HMAC_256' | 'RSA_2048';

/** One call the stand-in answered (or refused). */
export interface KmsCall {
  operation: string;
  /** The access key id the caller signed with (its credentials), or undefined for an unsigned request. */
  accessKeyId: string | undefined;
  /** The KeyId the request named, as sent. */
  keyId: string | undefined;
  /** The ARN of the key the call used (also for a Decrypt that names none), if one was found. */
  keyArn: string | undefined;
  /** The encryption context of GenerateDataKey, Encrypt and Decrypt. */
  encryptionContext: Record<string, string> | undefined;
  /** The `__type` of the error answered, if any. */
  error: string | undefined;
}

/** Options of {@link KmsServer}. */
export interface KmsServerOptions {
  /** Region and account of the key ARNs made from bare key ids. @default us-east-1, 111122223333 */
  region?: string;
  accountId?: string;
  /**
   * Create a key the first time a request names an unknown ARN (its spec chosen by the operation).
   * @default false - an unknown key is NotFoundException, as in KMS
   */
  createKeysOnDemand?: boolean;
}

interface StoredKey {
  arn: string;
  spec: KmsKeySpec;
  /** AES-256 key material (symmetric), HMAC key (HMAC_256). */
  secret?: Buffer;
  /** RSA key pair, made on first use (it takes a moment). */
  rsa?: { privateKey: KeyObject; publicKey: KeyObject };
}

/** A KMS error as the SDK sees it: the `__type` and `message` of the response body. */
class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const CIPHERTEXT_VERSION = 1;
const SIGNING_ALGORITHMS = [
  'RSASSA_PSS_SHA_256',
  'RSASSA_PSS_SHA_384',
  'RSASSA_PSS_SHA_512',
  'RSASSA_PKCS1_V1_5_SHA_256',
  'RSASSA_PKCS1_V1_5_SHA_384',
  'RSASSA_PKCS1_V1_5_SHA_512',
];
/** DER DigestInfo prefixes (RFC 8017 §9.2), to sign a precomputed digest with PKCS#1 v1.5. */
const DIGEST_INFO: Record<string, Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

/** The encryption context as additional authenticated data: its pairs sorted, so key order does not matter. */
const contextAad = (context: Record<string, string> | undefined): Buffer =>
  Buffer.from(JSON.stringify(Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));

/** A KMS stand-in on 127.0.0.1; `start()` it, point clients at `endpoint`, `close()` it in `afterAll`. */
export class KmsServer {
  /** Every request answered, in order. */
  readonly calls: KmsCall[] = [];
  private readonly keys = new Map<string, StoredKey>();
  private readonly region: string;
  private readonly accountId: string;
  private readonly createKeysOnDemand: boolean;
  private server: Server | undefined;
  /** The call being answered (operations are synchronous, so one at a time). */
  private current: KmsCall | undefined;
  private url: string | undefined;

  constructor({ region = 'us-east-1', accountId = '111122223333', createKeysOnDemand = false }: KmsServerOptions = {}) {
    this.region = region;
    this.accountId = accountId;
    this.createKeysOnDemand = createKeysOnDemand;
  }

  /** The URL to give a client as `endpoint` or `AWS_ENDPOINT_URL_KMS`. */
  get endpoint(): string {
    if (!this.url) throw new Error('KmsServer: start() it first');
    return this.url;
  }

  /** Registers a key under its ARN (a new one in this server's account and region if omitted) and returns the ARN. */
  createKey(spec: KmsKeySpec = 'SYMMETRIC_DEFAULT', arn = `arn:aws:kms:${this.region}:${this.accountId}:key/${randomUUID()}`) {
    if (!/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(arn))
      throw new Error(`KmsServer: not a key ARN: ${arn}`);
    this.keys.set(arn, { arn, spec, ...(spec === 'RSA_2048' ? {} : { secret: randomBytes(32) }) });
    return arn;
  }

  async start(): Promise<string> {
    const server = createServer((request, response) => void this.serve(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    // The SDK keeps connections alive; they would hold close() open.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const target = String(request.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : target;
    const credential = /Credential=([^/,\s]+)\//.exec(String(request.headers.authorization ?? ''))?.[1];
    const call: KmsCall = {
      operation,
      accessKeyId: credential,
      keyId: undefined,
      keyArn: undefined,
      encryptionContext: undefined,
      error: undefined,
    };
    let status = 200;
    let body: unknown;
    try {
      if (request.method !== 'POST' || !target.startsWith('TrentService.'))
        throw new KmsError('UnknownOperationException', `Unknown operation ${target || '(no X-Amz-Target)'}`);
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        throw new KmsError('SerializationException', 'The request body is not JSON');
      }
      if (typeof input.KeyId === 'string') call.keyId = input.KeyId;
      if (input.EncryptionContext && typeof input.EncryptionContext === 'object')
        call.encryptionContext = input.EncryptionContext as Record<string, string>;
      this.current = call;
      body = this.operate(operation, input);
    } catch (error) {
      // KMS answers a caller's mistake with 400 and its own failure with 500 (which the SDK retries).
      status = error instanceof KmsError ? 400 : 500;
      const kmsError =
        error instanceof KmsError ? error : new KmsError('KMSInternalException', `stand-in failure: ${(error as Error).message}`);
      call.error = kmsError.type;
      body = { __type: kmsError.type, message: kmsError.message };
    }
    this.current = undefined;
    this.calls.push(call);
    const text = JSON.stringify(body);
    response.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
    });
    response.end(text);
  }

  private operate(operation: string, input: Record<string, unknown>): Record<string, unknown> {
    switch (operation) {
      case 'GenerateDataKey':
        return this.generateDataKey(input);
      case 'Encrypt': {
        const key = this.symmetricKey(input.KeyId);
        const plaintext = blob(input.Plaintext, 'Plaintext');
        if (plaintext.length < 1 || plaintext.length > 4096)
          throw new KmsError('ValidationException', 'Plaintext must be 1 to 4096 bytes');
        return {
          KeyId: key.arn,
          CiphertextBlob: this.seal(key, plaintext, context(input)).toString('base64'),
          EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        };
      }
      case 'Decrypt':
        return this.decrypt(input);
      case 'GenerateMac': {
        const key = this.macKey(input);
        return { KeyId: key.arn, MacAlgorithm: 'HMAC_SHA_256', Mac: this.mac(key, input).toString('base64') };
      }
      case 'VerifyMac': {
        const key = this.macKey(input);
        const expected = this.mac(key, input);
        const given = blob(input.Mac, 'Mac');
        if (given.length !== expected.length || !timingSafeEqual(given, expected))
          throw new KmsError('KMSInvalidMacException', 'The MAC does not match the message');
        return { KeyId: key.arn, MacAlgorithm: 'HMAC_SHA_256', MacValid: true };
      }
      case 'Sign':
        return this.sign(input);
      case 'GetPublicKey': {
        const key = this.key(input.KeyId, 'RSA_2048');
        if (key.spec !== 'RSA_2048') throw new KmsError('UnsupportedOperationException', `${key.arn} is not an asymmetric key`);
        return {
          KeyId: key.arn,
          KeySpec: 'RSA_2048',
          CustomerMasterKeySpec: 'RSA_2048',
          KeyUsage: 'SIGN_VERIFY',
          SigningAlgorithms: SIGNING_ALGORITHMS,
          PublicKey: this.rsa(key).publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
        };
      }
      default:
        throw new KmsError('UnknownOperationException', `The stand-in does not serve ${operation}`);
    }
  }

  /** The key a KeyId names (an ARN or a bare key id), or NotFoundException; `spec` is used for keys made on demand. */
  private key(keyId: unknown, spec: KmsKeySpec): StoredKey {
    if (typeof keyId !== 'string' || keyId === '') throw new KmsError('ValidationException', 'KeyId is required');
    const arn = keyId.startsWith('arn:') ? keyId : `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`;
    let key = this.keys.get(arn);
    if (!key && this.createKeysOnDemand && /:key\/[A-Za-z0-9-]+$/.test(arn)) {
      this.createKey(spec, arn);
      key = this.keys.get(arn);
    }
    if (!key) throw new KmsError('NotFoundException', `Key '${keyId}' does not exist`);
    if (this.current) this.current.keyArn = key.arn;
    return key;
  }

  private symmetricKey(keyId: unknown): StoredKey & { secret: Buffer } {
    const key = this.key(keyId, 'SYMMETRIC_DEFAULT');
    if (key.spec !== 'SYMMETRIC_DEFAULT' || !key.secret)
      throw new KmsError('InvalidKeyUsageException', `${key.arn} is not an ENCRYPT_DECRYPT symmetric key`);
    return key as StoredKey & { secret: Buffer };
  }

  private generateDataKey(input: Record<string, unknown>): Record<string, unknown> {
    const key = this.symmetricKey(input.KeyId);
    let bytes: number;
    if (input.NumberOfBytes !== undefined) {
      if (!Number.isInteger(input.NumberOfBytes) || (input.NumberOfBytes as number) < 1 || (input.NumberOfBytes as number) > 1024)
        throw new KmsError('ValidationException', 'NumberOfBytes must be 1 to 1024');
      if (input.KeySpec !== undefined) throw new KmsError('ValidationException', 'Give KeySpec or NumberOfBytes, not both');
      bytes = input.NumberOfBytes as number;
    } else if (input.KeySpec === 'AES_256') bytes = 32;
    else if (input.KeySpec === 'AES_128') bytes = 16;
    else throw new KmsError('ValidationException', 'KeySpec or NumberOfBytes is required');
    const plaintext = randomBytes(bytes);
    return {
      KeyId: key.arn,
      Plaintext: plaintext.toString('base64'),
      CiphertextBlob: this.seal(key, plaintext, context(input)).toString('base64'),
    };
  }

  /** The ciphertext blob: version, the key's ARN (so Decrypt needs no KeyId, as in KMS), IV, ciphertext, tag. */
  private seal(
    key: StoredKey & { secret: Buffer },
    plaintext: Buffer,
    encryptionContext: Record<string, string> | undefined,
  ): Buffer {
    const arn = Buffer.from(key.arn);
    const iv = randomBytes(12);
    const header = Buffer.concat([Buffer.from([CIPHERTEXT_VERSION]), Buffer.from([arn.length >> 8, arn.length & 0xff]), arn]);
    const cipher = createCipheriv('aes-256-gcm', key.secret, iv);
    cipher.setAAD(Buffer.concat([header, contextAad(encryptionContext)]));
    return Buffer.concat([header, iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  private decrypt(input: Record<string, unknown>): Record<string, unknown> {
    const data = blob(input.CiphertextBlob, 'CiphertextBlob');
    const invalid = () =>
      new KmsError('InvalidCiphertextException', 'The ciphertext is invalid or its encryption context differs');
    if (data.length < 3 || data[0] !== CIPHERTEXT_VERSION) throw invalid();
    const arnLength = (data[1]! << 8) | data[2]!;
    const headerLength = 3 + arnLength;
    if (data.length < headerLength + 12 + 16) throw invalid();
    const arn = data.subarray(3, headerLength).toString('utf8');
    const key = this.symmetricKey(arn);
    if (input.KeyId !== undefined && this.key(input.KeyId, 'SYMMETRIC_DEFAULT').arn !== key.arn)
      throw new KmsError('IncorrectKeyException', 'The ciphertext was not encrypted under the KeyId given');
    const decipher = createDecipheriv('aes-256-gcm', key.secret, data.subarray(headerLength, headerLength + 12));
    decipher.setAAD(Buffer.concat([data.subarray(0, headerLength), contextAad(context(input))]));
    decipher.setAuthTag(data.subarray(data.length - 16));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(data.subarray(headerLength + 12, data.length - 16)), decipher.final()]);
    } catch {
      throw invalid();
    }
    return { KeyId: key.arn, Plaintext: plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  }

  private macKey(input: Record<string, unknown>): StoredKey & { secret: Buffer } {
    const key = this.key(input.KeyId, 'HMAC_256');
    if (key.spec !== 'HMAC_256' || !key.secret)
      throw new KmsError('InvalidKeyUsageException', `${key.arn} is not a GENERATE_VERIFY_MAC key`);
    if (input.MacAlgorithm !== 'HMAC_SHA_256')
      throw new KmsError('InvalidKeyUsageException', `${String(input.MacAlgorithm)} is not an algorithm of an HMAC_256 key`);
    return key as StoredKey & { secret: Buffer };
  }

  private mac(key: StoredKey & { secret: Buffer }, input: Record<string, unknown>): Buffer {
    const message = blob(input.Message, 'Message');
    if (message.length < 1 || message.length > 4096) throw new KmsError('ValidationException', 'Message must be 1 to 4096 bytes');
    return createHmac('sha256', key.secret).update(message).digest();
  }

  private rsa(key: StoredKey): NonNullable<StoredKey['rsa']> {
    key.rsa ??= generateKeyPairSync('rsa', { modulusLength: 2048 });
    return key.rsa;
  }

  private sign(input: Record<string, unknown>): Record<string, unknown> {
    const key = this.key(input.KeyId, 'RSA_2048');
    if (key.spec !== 'RSA_2048') throw new KmsError('InvalidKeyUsageException', `${key.arn} is not a SIGN_VERIFY key`);
    const algorithm = String(input.SigningAlgorithm);
    const match = /^RSASSA_(PSS|PKCS1_V1_5)_SHA_(256|384|512)$/.exec(algorithm);
    if (!match) throw new KmsError('InvalidKeyUsageException', `${algorithm} is not an algorithm of an RSA_2048 key`);
    const hash = `sha${match[2]}`;
    const pss = match[1] === 'PSS';
    const message = blob(input.Message, 'Message');
    const messageType = input.MessageType ?? 'RAW';
    const { privateKey } = this.rsa(key);
    let signature: Buffer;
    if (messageType === 'RAW') {
      if (message.length < 1 || message.length > 4096)
        throw new KmsError('ValidationException', 'Message must be 1 to 4096 bytes');
      signature = sign(hash, message, {
        key: privateKey,
        padding: pss ? cryptoConstants.RSA_PKCS1_PSS_PADDING : cryptoConstants.RSA_PKCS1_PADDING,
        // KMS's PSS salt is as long as the digest.
        ...(pss ? { saltLength: createHash(hash).digest().length } : {}),
      });
    } else if (messageType === 'DIGEST') {
      if (message.length !== createHash(hash).digest().length)
        throw new KmsError('ValidationException', `A ${hash} digest is ${createHash(hash).digest().length} bytes`);
      // Node signs a precomputed digest only the PKCS#1 v1.5 way (DigestInfo, then the private-key operation).
      if (pss) throw new KmsError('UnsupportedOperationException', 'The stand-in signs PSS over RAW messages only');
      signature = privateEncrypt(
        { key: privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING },
        Buffer.concat([DIGEST_INFO[hash]!, message]),
      );
    } else throw new KmsError('ValidationException', `MessageType must be RAW or DIGEST, got ${String(messageType)}`);
    return { KeyId: key.arn, SigningAlgorithm: algorithm, Signature: signature.toString('base64') };
  }
}

/** A blob member (base64 in AWS JSON). */
function blob(value: unknown, name: string): Buffer {
  if (typeof value !== 'string') throw new KmsError('ValidationException', `${name} is required`);
  return Buffer.from(value, 'base64');
}

function context(input: Record<string, unknown>): Record<string, string> | undefined {
  const value = input.EncryptionContext;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Object.values(value).some((entry) => typeof entry !== 'string'))
    throw new KmsError('ValidationException', 'EncryptionContext must map strings to strings');
  return value as Record<string, string>;
}
