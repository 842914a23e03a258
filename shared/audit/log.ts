/**
 * The audit trail's records (contract §7): one record per change, written in the change's own transaction, its
 * content encrypted with the AWS Encryption SDK (KMS keyring in AWS, raw AES keyring locally).
 *
 * A record binds its own identity (tenant, eventId, time, action) inside its authenticated ciphertext, and is
 * written under a key of its own (`EVENT#{occurredAt}#{eventId}`): concurrent changes in one tenant touch no
 * shared item, so they do not fight. Records are put in order afterwards: the linker (./chain.ts) reads the
 * audit table's stream and links each record into the tenant's hash chain; ./digests.ts anchors the chain
 * outside the table; ./verify.ts checks all of it.
 */
import { createHash } from 'node:crypto';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  getLocalCryptographicMaterialsCache,
  type KeyringNode,
  KmsKeyringNode,
  NodeCachingMaterialsManager,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import type { KMS } from '@aws-sdk/client-kms';
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteItem } from '../dynamodb.ts';
import { accessDenied, InvalidRequestError, ServiceUnavailableError } from '../errors.ts';
import { newEventId } from '../ids.ts';
import type { Actor, AuditAction } from '../model.ts';
import { AUDIT_ENCRYPTION_PURPOSE } from '../names.ts';
import type { Page } from '../store.ts';
import { keys } from '../tables.ts';

/** What happened, as audit records name it (defined with the other nouns, in model.ts). */
export { AUDIT_ACTIONS, type AuditAction } from '../model.ts';

/** What a change tells the audit log about itself. Never put a private key or token here. */
export interface AuditEventInput {
  action: AuditAction;
  actor: Actor;
  target: { clientId: string; keyId?: string };
  details: Record<string, unknown>;
  requestId?: string;
  sourceIp?: string;
}

/** A decrypted audit record. `seq` is its place in the tenant's chain, once the linker has linked it. */
export interface AuditEvent extends AuditEventInput {
  eventId: string;
  tenantId: string;
  seq?: number;
  occurredAt: string;
}

/** A record as listed: decrypted, or marked when its content failed authentication. */
export type ListedAuditEvent =
  | AuditEvent
  | { eventId: string; tenantId: string; seq?: number; occurredAt: string; action: string; integrity: 'failed' };

export { AUDIT_ENCRYPTION_PURPOSE };

/** Version 2: records carry no seq and no previous digest (the linker puts them in order). */
const CONTENT_VERSION = 2;

/** Encrypts and decrypts record content under a per-tenant encryption context. */
export interface AuditCipher {
  encrypt(tenantId: string, plaintext: Buffer): Promise<Uint8Array>;
  /** Throws when the message is not authentic or was encrypted for another tenant. */
  decrypt(tenantId: string, ciphertext: Uint8Array): Promise<Buffer>;
}

/** Options of {@link createAuditCipher}. */
export interface AuditCipherOptions {
  keyring: KeyringNode;
  /** How long a data key is reused. @default 300000 (5 minutes) */
  cacheMaxAgeMs?: number;
  /** How many messages one data key may encrypt. @default 1000 */
  cacheMaxMessages?: number;
  /** Use no data-key cache (every record asks the keyring; for benchmarks). @default false */
  disableCache?: boolean;
}

/**
 * An Encryption SDK cipher with a caching materials manager. The encryption context names only the tenant
 * and the purpose, so the cache (keyed by context) reuses one data key per tenant; the record's own identity
 * is bound inside the authenticated content instead. The suite is the committing one without signatures:
 * readers and writers are the same trusted service, so an asymmetric signature would buy nothing that
 * the KMS key policy does not, at about 5-10x the cost per record (see ../shared/FACTS.md).
 */
export function createAuditCipher({
  keyring,
  cacheMaxAgeMs = 300_000,
  cacheMaxMessages = 1000,
  disableCache = false,
}: AuditCipherOptions): AuditCipher {
  const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const materials = disableCache
    ? keyring
    : new NodeCachingMaterialsManager({
        backingMaterials: keyring,
        cache: getLocalCryptographicMaterialsCache(1000),
        maxAge: cacheMaxAgeMs,
        maxMessagesEncrypted: cacheMaxMessages,
      });
  return {
    async encrypt(tenantId, plaintext) {
      const { result } = await encrypt(materials, plaintext, {
        encryptionContext: { purpose: AUDIT_ENCRYPTION_PURPOSE, tenant: tenantId },
        suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
        plaintextLength: plaintext.length,
      });
      return result;
    },
    async decrypt(tenantId, ciphertext) {
      const { plaintext, messageHeader } = await decrypt(materials, ciphertext);
      const context = messageHeader.encryptionContext;
      if (context.purpose !== AUDIT_ENCRYPTION_PURPOSE || context.tenant !== tenantId)
        throw new AuditIntegrityError('the record was encrypted for another tenant or purpose');
      return plaintext;
    },
  };
}

/** A raw AES-256 keyring: the local stand-in for KMS. */
export function localKeyring(wrappingKey: Uint8Array): KeyringNode {
  if (wrappingKey.length !== 32) throw new Error('the local wrapping key must be 32 bytes');
  return new RawAesKeyringNode({
    keyNamespace: 'keysmith-local',
    keyName: 'audit-wrapping-key',
    unencryptedMasterKey: new Uint8Array(wrappingKey), // the SDK wants a buffer of its own
    wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
  });
}

/** A KMS keyring on one key; `kms` is the aggregated `KMS` client of @aws-sdk/client-kms. */
export function kmsKeyring(keyArn: string, kms: KMS): KeyringNode {
  return new KmsKeyringNode({ generatorKeyId: keyArn, clientProvider: () => kms });
}

/** A record whose ciphertext does not authenticate, or whose content does not match where it is stored. */
export class AuditIntegrityError extends Error {
  override name = 'AuditIntegrityError';
}

/** The SHA-256 of a record's ciphertext, base64url: what the chain links (computable without any key). */
export const recordDigest = (ciphertext: Uint8Array): string => createHash('sha256').update(ciphertext).digest('base64url');

/** What a record's ciphertext holds: the event, its identity included. */
export interface RecordContent extends Omit<AuditEvent, 'seq'> {
  v: number;
}

/** The sort key of an audit record: its time and its eventId. */
export const EVENT_SORT_KEY = /^EVENT#(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)#(ev_[0-9A-Za-z]{22})$/;

/** A stored record opened: its content, the digest the chain links, and whether it sits where it belongs. */
export interface OpenedRecord {
  content: RecordContent;
  digest: string;
  /** Authentic, but stored under another key or labelled otherwise than its content says (moved or copied). */
  misplaced: boolean;
}

/**
 * Decrypts a stored record. Throws {@link AuditIntegrityError} when the ciphertext does not authenticate for the
 * item's tenant; `misplaced` when it is authentic but stored where it does not belong.
 */
export async function openRecord(cipher: AuditCipher, item: Record<string, unknown>): Promise<OpenedRecord> {
  const tenantId = item.tenantId as string;
  const match = EVENT_SORT_KEY.exec(String(item.sk));
  const ciphertext = item.ciphertext;
  if (!match || !(ciphertext instanceof Uint8Array) || typeof tenantId !== 'string' || item.pk !== keys.auditPartition(tenantId))
    throw new AuditIntegrityError('the record is malformed');
  const [, occurredAt, eventId] = match;
  let content: RecordContent;
  try {
    content = JSON.parse((await cipher.decrypt(tenantId, ciphertext)).toString('utf8')) as RecordContent;
  } catch (error) {
    if (error instanceof AuditIntegrityError) throw error;
    // KMS throttled, unreachable or denied is not tampering: say so, retryably, instead of "changed".
    if (keyUnavailable(error)) throw auditUnavailable(error, 'decrypted');
    throw new AuditIntegrityError('the ciphertext does not authenticate');
  }
  if (content.v !== CONTENT_VERSION || content.tenantId !== tenantId)
    throw new AuditIntegrityError('the content is of another version or tenant');
  const misplaced =
    content.eventId !== eventId ||
    content.occurredAt !== occurredAt ||
    content.eventId !== item.eventId ||
    content.occurredAt !== item.occurredAt ||
    content.action !== item.action;
  return { content, digest: recordDigest(ciphertext), misplaced };
}

/** The seq the linker wrote on a record item, if it is one (the chain, not this attribute, is what verify trusts). */
export const linkedSeqOf = (item: Record<string, unknown>): number | undefined =>
  Number.isSafeInteger(item.seq) && (item.seq as number) >= 1 ? (item.seq as number) : undefined;

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  documentClient: DynamoDBDocumentClient;
  tableName: string;
  cipher: AuditCipher;
  /** Days until a record expires through DynamoDB TTL. @default undefined (kept forever) */
  retentionDays?: number;
  /** The clock. @default Date.now */
  now?: () => number;
}

/** When and as what a change's record is written (the service names it in the client's seal). */
export interface RecordIdentity {
  eventId?: string;
  occurredAt?: string;
}

/** Writes (as a transaction item) and lists a tenant's audit records. */
export class AuditLog {
  readonly tableName: string;
  readonly cipher: AuditCipher;
  readonly retentionDays: number | undefined;
  private readonly db: DynamoDBDocumentClient;
  private readonly now: () => number;

  constructor({ documentClient, tableName, cipher, retentionDays, now = Date.now }: AuditLogOptions) {
    this.db = documentClient;
    this.tableName = tableName;
    this.cipher = cipher;
    this.retentionDays = retentionDays;
    this.now = now;
  }

  /**
   * The transaction item that writes one record: its content encrypted (binding its tenant, eventId, time and
   * action), under a key no other change writes. It reads nothing, so concurrent changes in a tenant never conflict
   * on the audit trail; the linker puts the records in order once they are committed.
   */
  async prepare(
    tenantId: string,
    input: AuditEventInput,
    identity: RecordIdentity = {},
  ): Promise<{ item: TransactWriteItem; event: AuditEvent }> {
    const occurredAt = identity.occurredAt ?? new Date(this.now()).toISOString();
    const event: AuditEvent = { eventId: identity.eventId ?? newEventId(), tenantId, occurredAt, ...input };
    const content: RecordContent = { v: CONTENT_VERSION, ...event };
    let ciphertext: Uint8Array;
    try {
      ciphertext = await this.cipher.encrypt(tenantId, Buffer.from(JSON.stringify(content)));
    } catch (error) {
      // Without its audit record a change must not happen: refuse it (retryably, unless the role lacks the permission).
      throw auditUnavailable(error, 'encrypted');
    }
    const expiresAtEpoch = this.retentionDays
      ? Math.floor(Date.parse(occurredAt) / 1000) + this.retentionDays * 86_400
      : undefined;
    const item: TransactWriteItem = {
      Put: {
        TableName: this.tableName,
        Item: {
          pk: keys.auditPartition(tenantId),
          sk: keys.auditEventSort(occurredAt, event.eventId),
          type: 'auditEvent',
          tenantId,
          eventId: event.eventId,
          occurredAt,
          action: input.action,
          ciphertext,
          expiresAtEpoch,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
    return { item, event };
  }

  /**
   * A tenant's records, newest first, optionally within [from, to] and of one action. `seq` is shown as the linker
   * wrote it (a record committed in the last moment may not have one yet); `keysmith audit verify` checks the chain.
   */
  async list(
    tenantId: string,
    query: { limit: number; cursor?: string; from?: string; to?: string; action?: AuditAction },
  ): Promise<Page<ListedAuditEvent>> {
    const partition = keys.auditPartition(tenantId);
    const lower = `EVENT#${query.from ?? ''}`;
    const upper = `EVENT#${query.to ?? '9999'}~`;
    const position = query.cursor ? decodeAuditCursor(query.cursor) : undefined;
    if (position !== undefined && (position < lower || position > upper))
      throw new InvalidRequestError('cursor belongs to another from/to range; start again without it.', 'invalid_cursor');
    // With an action filter DynamoDB applies Limit before filtering, so read on (at most 10 requests) to fill the page.
    const collected: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined = query.cursor
      ? { pk: partition, sk: decodeAuditCursor(query.cursor) }
      : undefined;
    let readUpTo: string | undefined;
    for (let request = 0; collected.length <= query.limit && request < 10; request++) {
      const { Items = [], LastEvaluatedKey } = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :lower AND :upper',
          ...(query.action ? { FilterExpression: '#action = :action', ExpressionAttributeNames: { '#action': 'action' } } : {}),
          ExpressionAttributeValues: {
            ':pk': partition,
            ':lower': lower,
            ':upper': upper,
            ...(query.action ? { ':action': query.action } : {}),
          },
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          ScanIndexForward: false,
          Limit: query.limit + 1 - collected.length,
        }),
      );
      collected.push(...Items);
      startKey = LastEvaluatedKey;
      readUpTo = LastEvaluatedKey?.sk as string | undefined;
      if (!LastEvaluatedKey) break;
    }
    const page = collected.slice(0, query.limit);
    const items: ListedAuditEvent[] = [];
    for (const item of page) {
      try {
        const { content, misplaced } = await openRecord(this.cipher, item);
        if (misplaced) throw new AuditIntegrityError('the record is stored out of place');
        const { v: _v, ...event } = content;
        const seq = linkedSeqOf(item);
        items.push(seq === undefined ? event : { ...event, seq });
      } catch (error) {
        if (!(error instanceof AuditIntegrityError)) throw error;
        items.push({
          eventId: String(item.eventId),
          tenantId,
          ...(linkedSeqOf(item) !== undefined ? { seq: linkedSeqOf(item) } : {}),
          occurredAt: String(item.occurredAt),
          action: String(item.action),
          integrity: 'failed',
        });
      }
    }
    const next = collected.length > query.limit ? (page.at(-1)?.sk as string) : readUpTo;
    return next ? { items, nextCursor: Buffer.from(JSON.stringify({ p: next })).toString('base64url') } : { items };
  }
}

/**
 * Whether a decrypt failure came from the key service rather than from the message: an AWS SDK error, or the
 * Encryption SDK's KMS keyring reporting that its KMS calls failed.
 */
const KEY_SERVICE_DOWN =
  /Throttl|TooManyRequests|KMSInternal|DependencyTimeout|ServiceUnavailable|InternalFailure|InternalError|RequestTimeout|TimeoutError|ETIMEDOUT|ECONNRESET|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EPIPE|socket hang up|NetworkingError|KMSInvalidState|DisabledException|KeyUnavailable|AccessDenied|not authorized|ExpiredToken|UnrecognizedClient|CredentialsProvider|Could not load credentials/;

export function keyUnavailable(error: unknown): boolean {
  const e = error as { name?: unknown; $metadata?: unknown; $fault?: unknown; message?: unknown };
  const text = `${String(e?.name ?? '')} ${String(e?.message ?? '')}`;
  // KMS refusing the data key itself (a ciphertext edited or moved in from elsewhere) is tampering, not an outage.
  if (/InvalidCiphertext|IncorrectKey/.test(text)) return false;
  if (!(e?.$metadata !== undefined || e?.$fault !== undefined || /KMS CMKs had an error/.test(text))) return false;
  // Only what says the key service is out of reach, busy, or refuses this role: anything else KMS answers about a
  // data key (a ValidationException for an oversized blob made in the table) is the message's fault, not KMS's.
  return KEY_SERVICE_DOWN.test(text);
}

/** The error for a key-service failure: access denied (a deployment fault, with its action) or unavailable (retry). */
export function auditUnavailable(error: unknown, what: 'encrypted' | 'decrypted'): Error {
  return (
    accessDenied(error, what === 'encrypted' ? 'kms:GenerateDataKey' : 'kms:Decrypt') ??
    new ServiceUnavailableError(
      'audit_unavailable',
      `The audit trail cannot be ${what} right now (KMS unavailable); nothing was changed. Retry later.`,
    )
  );
}

function decodeAuditCursor(cursor: string): string {
  try {
    const position = (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { p?: unknown }).p;
    if (typeof position === 'string' && EVENT_SORT_KEY.test(position)) return position;
  } catch {
    // fall through
  }
  throw new InvalidRequestError('cursor is not a cursor this list returned.', 'invalid_cursor');
}
