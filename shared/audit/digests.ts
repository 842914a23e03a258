/**
 * Digests: the audit chain anchored outside its table, after AWS CloudTrail's digest files. Periodically (and on
 * demand) each tenant whose chain moved gets a digest of its head: tenant, last seq, last link, when it was linked,
 * the SHA-256 of the tenant's previous digest, and when the digest was made. It is a compact JWS (RS256) signed
 * with a KMS asymmetric key (locally an RSA key file), written where the table's writer cannot rewrite it: an S3
 * bucket with Object Lock in compliance mode (locally a folder under `.keysmith/`). Checking one needs only the
 * public key: an auditor without `kms:Decrypt` can check the chain's integrity, not its content.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { type IssuerKey, issuerKey, type TokenSigner } from '../access-token.ts';
import { TENANT_ID } from '../ids.ts';
import type { TamperListener } from '../store.ts';
import { keys } from '../tables.ts';
import type { AnchorMark, AnchorQueue } from './anchor-queue.ts';
import { readHead } from './chain.ts';
import type { AuditCipher } from './log.ts';

/** The JWS `typ` of a digest. */
export const DIGEST_TYPE = 'keysmith-audit-digest+jws';
const DIGEST_VERSION = 1;

/** What a digest says (its JWS payload). */
export interface DigestPayload {
  v: number;
  tenantId: string;
  /** The head's seq and link when the digest was made. */
  seq: number;
  link: string;
  eventId: string;
  linkedAt: string;
  /** The tenant's previous digest (its object key and the SHA-256 of its bytes, base64url), null for the first. */
  previous: { key: string; sha256: string } | null;
  createdAt: string;
}

/** A digest as stored: its key, its bytes (the compact JWS) and what it says. */
export interface StoredDigest {
  key: string;
  body: Buffer;
  payload: DigestPayload;
}

/** The object key of a digest: sorted by seq, then time, within the tenant's prefix. */
export const digestKey = (tenantId: string, seq: number, createdAt: string): string =>
  `digests/${tenantId}/${String(seq).padStart(12, '0')}-${String(Date.parse(createdAt)).padStart(13, '0')}.jws`;
const DIGEST_KEY = /^digests\/([a-z0-9][a-z0-9_-]{0,62})\/(\d{12})-(\d{13})\.jws$/;

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url');
const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Where digests are kept: written once, never overwritten. */
export interface DigestStore {
  /** Writes a new digest; throws {@link DigestExistsError} if the key is taken. */
  put(key: string, body: Buffer): Promise<void>;
  /** The tenant's digest keys after `startAfter` (all when absent), in key order. */
  list(tenantId: string, startAfter?: string): Promise<string[]>;
  /** A digest's bytes, or undefined when there is none by that key. */
  get(key: string): Promise<Buffer | undefined>;
  /** Where the store is, for messages. */
  readonly location: string;
}

export class DigestExistsError extends Error {
  override name = 'DigestExistsError';
}

/** Digests in a folder (the local stand-in for the bucket): files created exclusively, readable by their owner. */
export class LocalDigestStore implements DigestStore {
  constructor(readonly location: string) {}

  async put(key: string, body: Buffer): Promise<void> {
    const file = join(this.location, key);
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    try {
      await writeFile(file, body, { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new DigestExistsError(key);
      throw error;
    }
  }

  async list(tenantId: string, startAfter?: string): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(join(this.location, 'digests', tenantId));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names
      .map((name) => `digests/${tenantId}/${name}`)
      .filter((key) => DIGEST_KEY.test(key) && (startAfter === undefined || key > startAfter))
      .sort();
  }

  async get(key: string): Promise<Buffer | undefined> {
    if (!DIGEST_KEY.test(key)) return undefined;
    try {
      return await readFile(join(this.location, key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}

/** Digests in an S3 bucket (Object Lock, compliance mode: not even the account root can rewrite one in time). */
export class S3DigestStore implements DigestStore {
  readonly location: string;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {
    this.location = `s3://${bucket}`;
  }

  async put(key: string, body: Buffer): Promise<void> {
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/jose',
          IfNoneMatch: '*',
          ChecksumAlgorithm: 'SHA256',
        }),
      );
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) throw new DigestExistsError(key);
      throw error;
    }
  }

  async list(tenantId: string, startAfter?: string): Promise<string[]> {
    const found: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: `digests/${tenantId}/`,
          ...(startAfter && !token ? { StartAfter: startAfter } : {}),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const object of page.Contents ?? []) if (object.Key && DIGEST_KEY.test(object.Key)) found.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found.sort();
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const answer = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }
}

/** A digest that does not verify: its reason, for `audit verify`. */
export class DigestInvalidError extends Error {
  override name = 'DigestInvalidError';
}

/** The digest public keys an auditor trusts (the KMS key's public half, or the local key's). */
export type DigestKeys = readonly IssuerKey[];

/** A PEM (SPKI public key, or a PKCS#8 private key from which the public half is taken) as a digest key. */
export function digestKeyFromPem(pem: string): IssuerKey {
  return issuerKey(createPublicKey(pem) as KeyObject);
}

/**
 * Checks a digest's signature and shape against the trusted keys and the key it is stored under. Throws
 * {@link DigestInvalidError} with the reason.
 */
export function openDigest(key: string, body: Buffer, trusted: DigestKeys): StoredDigest {
  const parts = body.toString('utf8').trim().split('.');
  const [headerPart, payloadPart, signaturePart] = parts;
  if (parts.length !== 3 || !headerPart || !payloadPart || !signaturePart)
    throw new DigestInvalidError(`${key} is not a compact JWS`);
  let header: { alg?: unknown; typ?: unknown; kid?: unknown };
  let payload: DigestPayload;
  try {
    header = JSON.parse(Buffer.from(headerPart, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8'));
  } catch {
    throw new DigestInvalidError(`${key} is not a compact JWS`);
  }
  if (header.alg !== 'RS256' || header.typ !== DIGEST_TYPE) throw new DigestInvalidError(`${key}: not an RS256 Keysmith digest`);
  const signer = trusted.find((candidate) => candidate.kid === header.kid);
  if (!signer) throw new DigestInvalidError(`${key} is signed by a key that is not trusted (kid ${String(header.kid)})`);
  const valid = verify(
    'sha256',
    Buffer.from(`${headerPart}.${payloadPart}`),
    signer.publicKey,
    Buffer.from(signaturePart, 'base64url'),
  );
  if (!valid) throw new DigestInvalidError(`${key}: the signature does not verify`);
  const match = DIGEST_KEY.exec(key);
  if (
    payload.v !== DIGEST_VERSION ||
    !match ||
    payload.tenantId !== match[1] ||
    payload.seq !== Number(match[2]) ||
    Date.parse(payload.createdAt) !== Number(match[3])
  )
    throw new DigestInvalidError(`${key}: its content does not match where it is stored`);
  return { key, body, payload };
}

/** What {@link AuditAnchor.anchor} did for one tenant. */
export interface AnchorOutcome {
  tenantId: string;
  /** The digest written, or why none was. */
  written?: { key: string; seq: number };
  skipped?: 'no_chain' | 'up_to_date' | 'head_invalid' | 'head_rolled_back';
  /** Why anchoring this tenant failed (anchorPending goes on with the others; the mark stays for the next run). */
  failed?: string;
}

/** Options of {@link AuditAnchor}. */
export interface AuditAnchorOptions {
  documentClient: DynamoDBDocumentClient;
  tableName: string;
  /** Checks the head's seal before it is signed. */
  cipher: AuditCipher;
  signer: TokenSigner;
  store: DigestStore;
  onTamper: TamperListener;
  /** Where the linker marks the tenants to anchor; without it, only {@link AuditAnchor.anchor} of one tenant works. */
  queue?: AnchorQueue;
  now?: () => number;
}

/** Tenants one scheduled run anchors at most (each costs an S3 list, get and put and a KMS Sign). */
export const MAX_TENANTS_PER_RUN = 400;
const ANCHOR_CONCURRENCY = 8;

/** Writes the digests. */
export class AuditAnchor {
  private readonly options: Required<Omit<AuditAnchorOptions, 'queue'>> & Pick<AuditAnchorOptions, 'queue'>;

  constructor(options: AuditAnchorOptions) {
    this.options = { now: Date.now, ...options };
  }

  /** The same anchor over another queue (the operator's `keysmith audit anchor`). */
  withQueue(queue: AnchorQueue): AuditAnchor {
    return new AuditAnchor({ ...this.options, queue });
  }

  /**
   * Anchors the tenants the linker marked since their last digest (the scheduled run): at most `maxTenants`, eight at
   * a time; each mark is acknowledged once its tenant is done, so one that fails stays for the next run (and after ten
   * failed runs goes to the dead-letter queue in AWS). Marks beyond `maxTenants` wait for the next run.
   */
  async anchorPending(maxTenants = MAX_TENANTS_PER_RUN): Promise<AnchorOutcome[]> {
    const queue = this.options.queue;
    if (!queue) throw new TypeError('this anchor has no anchor queue: anchor one tenant, or configure the queue');
    const marks = await queue.take(maxTenants);
    const outcomes: AnchorOutcome[] = [];
    let next = 0;
    const worker = async () => {
      while (next < marks.length) {
        const mark = marks[next++] as AnchorMark;
        let outcome: AnchorOutcome;
        try {
          outcome = await this.anchor(mark.tenantId);
        } catch (error) {
          // One tenant's failure (S3, KMS, DynamoDB) does not hold back the others; its mark stays.
          outcomes.push({ tenantId: mark.tenantId, failed: `${(error as Error).name}: ${(error as Error).message}` });
          continue;
        }
        outcomes.push(outcome);
        await mark.done();
      }
    };
    await Promise.all(Array.from({ length: Math.min(ANCHOR_CONCURRENCY, marks.length) }, worker));
    return outcomes.sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
  }

  /**
   * A digest of the tenant's head, if it moved since the tenant's latest digest. The head is signed only when its
   * seal checks and it is not behind the latest digest (a rolled-back head is reported, never anchored).
   */
  async anchor(tenantId: string): Promise<AnchorOutcome> {
    const { documentClient: db, tableName, cipher, signer, store, onTamper, now } = this.options;
    if (!TENANT_ID.test(tenantId)) throw new TypeError('tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$');
    const head = await readHead(db, tableName, tenantId, cipher);
    if (!head) return { tenantId, skipped: 'no_chain' };
    if (!head.authentic) {
      onTamper({ reason: 'audit_head_invalid', tenantId });
      return { tenantId, skipped: 'head_invalid' };
    }
    const latest = await this.latest(tenantId);
    if (latest && (latest.payload.seq > head.seq || (latest.payload.seq === head.seq && latest.payload.link !== head.link))) {
      onTamper({ reason: 'audit_head_rolled_back', tenantId });
      return { tenantId, skipped: 'head_rolled_back' };
    }
    if (!latest || latest.payload.seq < head.seq) {
      const createdAt = new Date(now()).toISOString();
      const payload: DigestPayload = {
        v: DIGEST_VERSION,
        tenantId,
        seq: head.seq,
        link: head.link,
        eventId: head.eventId,
        linkedAt: head.linkedAt,
        previous: latest ? { key: latest.key, sha256: sha256(latest.body) } : null,
        createdAt,
      };
      const { kid } = await signer.key();
      const signingInput = `${encode({ alg: 'RS256', typ: DIGEST_TYPE, kid })}.${encode(payload)}`;
      const signature = await signer.sign(Buffer.from(signingInput));
      const key = digestKey(tenantId, head.seq, createdAt);
      try {
        await store.put(key, Buffer.from(`${signingInput}.${signature.toString('base64url')}`));
      } catch (error) {
        // Another anchor wrote this seq in the same millisecond: the head is anchored, by it.
        if (error instanceof DigestExistsError) return { tenantId, skipped: 'up_to_date' };
        throw error;
      }
      await db.send(new PutCommand({ TableName: tableName, Item: { ...keys.auditLastDigest(tenantId), key, seq: head.seq } }));
      return { tenantId, written: { key, seq: head.seq } };
    }
    return { tenantId, skipped: 'up_to_date' };
  }

  /**
   * The tenant's latest digest. The pointer item in the table only says where to start listing: S3 (not the table)
   * decides what is latest, so a pointer edited in the table can make this slower, never wrong.
   */
  private async latest(tenantId: string): Promise<StoredDigest | undefined> {
    const { documentClient: db, tableName, store } = this.options;
    const { Item } = await db.send(
      new GetCommand({ TableName: tableName, Key: keys.auditLastDigest(tenantId), ConsistentRead: true }),
    );
    // Only a key under this tenant's own prefix: the pointer is in the table, which may name anyone's digest.
    const pointer =
      typeof Item?.key === 'string' && DIGEST_KEY.test(Item.key) && Item.key.startsWith(`digests/${tenantId}/`)
        ? Item.key
        : undefined;
    let key = pointer ? (await store.list(tenantId, pointer)).at(-1) : undefined;
    let body = key ? await store.get(key) : undefined;
    if (!body && pointer) {
      body = await store.get(pointer);
      key = body ? pointer : undefined;
    }
    if (!body) {
      key = (await store.list(tenantId)).at(-1);
      body = key ? await store.get(key) : undefined;
    }
    if (!key || !body) return undefined;
    // Checked with the signer's own public key: a digest that does not verify is never chained to (verify reports it).
    const digest = openDigest(key, body, [await this.options.signer.key()]);
    if (digest.payload.tenantId !== tenantId) throw new DigestInvalidError(`${key} is not a digest of tenant ${tenantId}`);
    return digest;
  }
}
