/**
 * The audit trail (contract §7): one record per change, written in the change's own transaction, its
 * content encrypted with the AWS Encryption SDK (KMS keyring in AWS, raw AES keyring locally).
 *
 * Each tenant's records form a hash chain: record n carries, inside its authenticated ciphertext, its
 * sequence number and the SHA-256 of record n-1's ciphertext; the chain head (last seq and digest) is
 * written in the same transaction with a condition on the previous seq, so concurrent changes in one
 * tenant serialize into one unbroken chain. The head is trusted only through its seal (its seq, digest and
 * time encrypted beside it): a head edited outside Keysmith makes every later change fail rather than extend
 * a forged chain, so a cut tail cannot be healed by the next legitimate change.
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
import { type DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteItem } from './dynamodb.ts';
import { accessDenied, IntegrityError, InvalidRequestError, ServiceUnavailableError } from './errors.ts';
import { newEventId } from './ids.ts';
import type { Actor } from './model.ts';
import { AUDIT_ENCRYPTION_PURPOSE } from './names.ts';
import type { ClientInspection, Page, TamperListener } from './store.ts';
import { keys } from './tables.ts';

/** What happened, as audit records name it. */
export const AUDIT_ACTIONS = [
  'client.created',
  'client.updated',
  'client.deleted',
  'access_key.created',
  'access_key.revoked',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** What a change tells the audit log about itself. Never put a private key or token here. */
export interface AuditEventInput {
  action: AuditAction;
  actor: Actor;
  target: { clientId: string; keyId?: string };
  details: Record<string, unknown>;
  requestId?: string;
  sourceIp?: string;
}

/** A decrypted audit record. */
export interface AuditEvent extends AuditEventInput {
  eventId: string;
  tenantId: string;
  seq: number;
  occurredAt: string;
}

/** A record as listed: decrypted, or marked when its content failed authentication. */
export type ListedAuditEvent =
  | AuditEvent
  | { eventId: string; tenantId: string; seq: number; occurredAt: string; action: string; integrity: 'failed' };

export { AUDIT_ENCRYPTION_PURPOSE };

const GENESIS_DIGEST = 'genesis';
const CONTENT_VERSION = 1;

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
  /** How many messages (records and head seals) one data key may encrypt. @default 1000 */
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

const digestOf = (ciphertext: Uint8Array): string => createHash('sha256').update(ciphertext).digest('base64url');

interface StoredContent extends AuditEvent {
  v: number;
  prevDigest: string;
}

interface ChainHead {
  seq: number;
  digest: string;
  occurredAt: string;
  /** The same three, encrypted: a head edited without the key does not authenticate. */
  seal: Uint8Array | undefined;
}

interface HeadSeal {
  v: number;
  kind: 'head';
  tenantId: string;
  seq: number;
  digest: string;
  occurredAt: string;
}

const EVENT_SORT_KEY = /^EVENT#(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)#(\d{12})$/;

/** What {@link AuditLog.verify} found. */
export interface ChainReport {
  ok: boolean;
  tenantId: string;
  /** Records walked. */
  records: number;
  /** Clients whose sealed last change was found in the chain (when `clients` was given). */
  clientsChecked?: number;
  firstSeq?: number;
  lastSeq?: number;
  /** The chain head as stored (seq and digest of the newest record): keep a copy outside AWS to detect a rollback. */
  head?: { seq: number; digest: string; occurredAt: string };
  /** The first problem, if any. */
  problem?: {
    kind: 'changed' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'head_missing' | 'head_changed' | 'rolled_back';
    seq: number;
    detail: string;
  };
}

/** Options of {@link AuditLog.verify}. */
export interface VerifyOptions {
  /** Called after each page with the number of records walked. */
  onProgress?: (walked: number) => void;
  /**
   * A head saved earlier outside AWS (from `verify`'s report): the chain must still hold that record with that
   * digest. This catches what nothing inside the table can: an old head written back after cutting the records since.
   */
  expectHead?: { seq: number; digest: string };
  /**
   * The main table's view of the tenant: each client's seal names the audit record of its last change
   * (`auditSeq`), which must be the last record naming it. A cut tail with an older head written back leaves
   * clients whose seals name records the chain no longer holds.
   */
  clients?: {
    /** The clientIds the main table lists for the tenant (its index may lag: each is read again by id). */
    listed: readonly string[];
    /** Reads one client through its seals (strongly consistent). */
    inspect: (clientId: string) => Promise<ClientInspection>;
  };
}

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  documentClient: DynamoDBDocumentClient;
  tableName: string;
  cipher: AuditCipher;
  /** Days until a record expires through DynamoDB TTL. @default undefined (kept forever) */
  retentionDays?: number;
  /** Told when a change is refused because the chain head is not authentic. @default nothing */
  onTamper?: TamperListener;
  /** The clock. @default Date.now */
  now?: () => number;
}

/** Writes (as transaction items), lists and verifies a tenant's audit chain. */
export class AuditLog {
  readonly tableName: string;
  private readonly db: DynamoDBDocumentClient;
  private readonly cipher: AuditCipher;
  private readonly retentionDays: number | undefined;
  private readonly onTamper: TamperListener;
  private readonly now: () => number;

  constructor({ documentClient, tableName, cipher, retentionDays, onTamper = () => undefined, now = Date.now }: AuditLogOptions) {
    this.db = documentClient;
    this.tableName = tableName;
    this.cipher = cipher;
    this.retentionDays = retentionDays;
    this.onTamper = onTamper;
    this.now = now;
  }

  private async readHead(tenantId: string): Promise<ChainHead | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.auditHead(tenantId), ConsistentRead: true }),
    );
    return Item
      ? {
          seq: Item.seq as number,
          digest: Item.digest as string,
          occurredAt: Item.occurredAt as string,
          seal: Item.seal as Uint8Array | undefined,
        }
      : undefined;
  }

  /**
   * Builds the transaction items that append one record to the tenant's chain: the encrypted record and the
   * conditional head update. If another change appends first, the head condition fails and the caller retries.
   */
  async prepare(tenantId: string, input: AuditEventInput): Promise<{ items: TransactWriteItem[]; event: AuditEvent }> {
    const head = await this.trustedHead(tenantId);
    const seq = (head?.seq ?? 0) + 1;
    const nowIso = new Date(this.now()).toISOString();
    // Time never runs backwards within a tenant, so the sort key's order is the chain's order.
    const occurredAt = head && head.occurredAt > nowIso ? head.occurredAt : nowIso;
    const event: AuditEvent = { eventId: newEventId(), tenantId, seq, occurredAt, ...input };
    const content: StoredContent = { v: CONTENT_VERSION, ...event, prevDigest: head?.digest ?? GENESIS_DIGEST };
    let ciphertext: Uint8Array;
    let seal: Uint8Array;
    try {
      ciphertext = await this.cipher.encrypt(tenantId, Buffer.from(JSON.stringify(content)));
      const sealed: HeadSeal = { v: CONTENT_VERSION, kind: 'head', tenantId, seq, digest: digestOf(ciphertext), occurredAt };
      seal = await this.cipher.encrypt(tenantId, Buffer.from(JSON.stringify(sealed)));
    } catch (error) {
      // Without its audit record a change must not happen: refuse it (retryably, unless the role lacks the permission).
      throw auditUnavailable(error, 'encrypted');
    }
    const digest = digestOf(ciphertext);
    const expiresAtEpoch = this.retentionDays ? Math.floor(this.now() / 1000) + this.retentionDays * 86_400 : undefined;

    const record: TransactWriteItem = {
      Put: {
        TableName: this.tableName,
        Item: {
          pk: keys.auditPartition(tenantId),
          sk: keys.auditEventSort(occurredAt, seq),
          type: 'auditEvent',
          tenantId,
          eventId: event.eventId,
          seq,
          occurredAt,
          action: input.action,
          ciphertext,
          expiresAtEpoch,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
    const headWrite: TransactWriteItem = {
      Put: {
        TableName: this.tableName,
        Item: { ...keys.auditHead(tenantId), type: 'auditHead', seq, digest, occurredAt, seal },
        ...(head
          ? { ConditionExpression: 'seq = :previous', ExpressionAttributeValues: { ':previous': head.seq } }
          : { ConditionExpression: 'attribute_not_exists(pk)' }),
      },
    };
    return { items: [record, headWrite], event };
  }

  /**
   * Decrypts a stored record. Throws when the ciphertext does not authenticate for this tenant; returns
   * `misplaced` when it is authentic but stored where it does not belong (moved, copied or relabelled).
   */
  private async open(item: Record<string, unknown>): Promise<{ content: StoredContent; digest: string; misplaced: boolean }> {
    const tenantId = item.tenantId as string;
    const match = EVENT_SORT_KEY.exec(item.sk as string);
    const ciphertext = item.ciphertext as Uint8Array | undefined;
    if (!match || !ciphertext || item.pk !== keys.auditPartition(tenantId))
      throw new AuditIntegrityError('the record is malformed');
    const [, occurredAt, seq] = match;
    let content: StoredContent;
    try {
      content = JSON.parse((await this.cipher.decrypt(tenantId, ciphertext)).toString('utf8')) as StoredContent;
    } catch (error) {
      if (error instanceof AuditIntegrityError) throw error;
      // KMS throttled, unreachable or denied is not tampering: say so, retryably, instead of "changed".
      if (keyUnavailable(error)) throw auditUnavailable(error, 'decrypted');
      throw new AuditIntegrityError('the ciphertext does not authenticate');
    }
    if (content.v !== CONTENT_VERSION || content.tenantId !== tenantId)
      throw new AuditIntegrityError('the content belongs to another tenant');
    const misplaced =
      content.seq !== Number(seq) ||
      content.occurredAt !== occurredAt ||
      content.eventId !== item.eventId ||
      content.action !== item.action ||
      content.seq !== item.seq;
    return { content, digest: digestOf(ciphertext), misplaced };
  }

  /** A tenant's records, newest first, optionally within [from, to] and of one action. */
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
        const { content, misplaced } = await this.open(item);
        if (misplaced) throw new AuditIntegrityError('the record is stored out of place');
        const { v: _v, prevDigest: _prev, ...event } = content;
        items.push(event);
      } catch (error) {
        if (!(error instanceof AuditIntegrityError)) throw error;
        items.push({
          eventId: String(item.eventId),
          tenantId,
          seq: Number(item.seq),
          occurredAt: String(item.occurredAt),
          action: String(item.action),
          integrity: 'failed',
        });
      }
    }
    const next = collected.length > query.limit ? (page.at(-1)?.sk as string) : readUpTo;
    return next ? { items, nextCursor: Buffer.from(JSON.stringify({ p: next })).toString('base64url') } : { items };
  }

  /**
   * The head to build the next record on: only when its plaintext is exactly what its seal says, and only absent
   * when the tenant has no records at all. Anything else refuses the change (IntegrityError, reported): extending
   * a chain from a forged head would hide the forgery (a cut tail "healed", a head time of 2099 stamped on every
   * later record).
   */
  private async trustedHead(tenantId: string): Promise<ChainHead | undefined> {
    let head = await this.readHead(tenantId);
    const refuse = (reason: 'audit_head_invalid' | 'audit_head_missing', detail: string): never => {
      this.onTamper({ reason, tenantId });
      throw new IntegrityError(
        'audit_chain_tampered',
        `${detail} Nothing was changed; run \`keysmith audit verify --tenant ${tenantId}\`.`,
      );
    };
    if (!head) {
      const { Items = [] } = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
          ExpressionAttributeValues: { ':pk': keys.auditPartition(tenantId), ':events': 'EVENT#' },
          ConsistentRead: true,
          Limit: 1,
        }),
      );
      if (Items.length === 0) return undefined;
      // A concurrent change may have committed its record and the head between the two reads; they are written
      // together, so once a record is seen, a head that is still missing was removed outside Keysmith.
      head = await this.readHead(tenantId);
      if (!head) return refuse('audit_head_missing', `The audit chain head of tenant ${tenantId} is missing but records exist.`);
    }
    if (!(await this.headIsAuthentic(tenantId, head)))
      refuse('audit_head_invalid', `The audit chain head of tenant ${tenantId} was changed outside Keysmith.`);
    return head;
  }

  /** Whether the head's plaintext seq, digest and time are the ones sealed when Keysmith wrote it. */
  private async headIsAuthentic(tenantId: string, head: ChainHead): Promise<boolean> {
    if (!head.seal) return false;
    let sealed: HeadSeal;
    try {
      sealed = JSON.parse((await this.cipher.decrypt(tenantId, head.seal)).toString('utf8')) as HeadSeal;
    } catch (error) {
      // KMS throttled, unreachable or denied is not tampering: nothing can be decided, so nothing is written.
      if (keyUnavailable(error)) throw auditUnavailable(error, 'decrypted');
      return false;
    }
    return (
      sealed.v === CONTENT_VERSION &&
      sealed.kind === 'head' &&
      sealed.tenantId === tenantId &&
      sealed.seq === head.seq &&
      sealed.digest === head.digest &&
      sealed.occurredAt === head.occurredAt
    );
  }

  /**
   * Walks a tenant's chain from its oldest record and reports the first record deleted, changed, reordered or
   * inserted, and a truncated tail (the head names a later record than the last one found).
   */
  async verify(tenantId: string, options: VerifyOptions = {}): Promise<ChainReport> {
    const { onProgress, expectHead, clients } = options;
    // The last record naming each client (seq and action): to check the clients' sealed last changes against it.
    const lastChange = new Map<string, { seq: number; action: string }>();
    const report: ChainReport = { ok: true, tenantId, records: 0 };
    const fail = (kind: NonNullable<ChainReport['problem']>['kind'], seq: number, detail: string): ChainReport => ({
      ...report,
      ok: false,
      problem: { kind, seq, detail },
    });
    const seen = new Set<number>();
    let previous: { seq: number; digest: string } | undefined;
    let startKey: Record<string, unknown> | undefined;
    // The head is read after the walk, and the walk goes on to it: changes committed meanwhile are walked too,
    // never mistaken for records added outside Keysmith (or for a cut tail).
    let head: ChainHead | undefined;
    for (let round = 0; round < 5; round++) {
      do {
        const page = await this.db.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
            ExpressionAttributeValues: { ':pk': keys.auditPartition(tenantId), ':events': 'EVENT#' },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
        );
        for (const item of page.Items ?? []) {
          const storedSeq = Number(EVENT_SORT_KEY.exec(String(item.sk))?.[2] ?? item.seq);
          let opened: Awaited<ReturnType<AuditLog['open']>>;
          try {
            opened = await this.open(item);
          } catch (error) {
            if (!(error instanceof AuditIntegrityError)) throw error;
            return fail('changed', storedSeq, `record ${storedSeq}: ${error.message}`);
          }
          const { content, digest, misplaced } = opened;
          if (seen.has(content.seq))
            return fail('inserted', storedSeq, `a copy of record ${content.seq} was inserted at ${storedSeq}`);
          if (misplaced)
            return fail(
              content.seq === storedSeq ? 'changed' : 'reordered',
              storedSeq,
              `record ${content.seq} is stored as record ${storedSeq} (${String(item.occurredAt)}): moved or relabelled`,
            );
          if (previous) {
            const expected = previous.seq + 1;
            if (content.seq < expected)
              return fail('reordered', content.seq, `record ${content.seq} comes after record ${previous.seq}`);
            if (content.seq > expected) return fail('deleted', expected, `records ${expected} to ${content.seq - 1} are missing`);
            if (content.prevDigest !== previous.digest)
              return fail('changed', previous.seq, `record ${content.seq} does not follow the stored record ${previous.seq}`);
          } else {
            report.firstSeq = content.seq;
            // Without retention the chain must start at its genesis; with retention, old records expire.
            if (!this.retentionDays && (content.seq !== 1 || content.prevDigest !== GENESIS_DIGEST))
              return fail('deleted', 1, `the chain starts at record ${content.seq}; records before it are missing`);
          }
          if (expectHead && content.seq === expectHead.seq && digest !== expectHead.digest)
            return fail(
              'rolled_back',
              content.seq,
              `record ${content.seq} is not the one a head kept elsewhere named: the chain was rolled back and rewritten since`,
            );
          seen.add(content.seq);
          if (typeof content.target?.clientId === 'string')
            lastChange.set(content.target.clientId, { seq: content.seq, action: content.action });
          previous = { seq: content.seq, digest };
          report.records += 1;
          report.lastSeq = content.seq;
        }
        onProgress?.(report.records);
        const last = page.Items?.at(-1);
        startKey = page.LastEvaluatedKey ?? (last ? { pk: last.pk, sk: last.sk } : startKey);
        if (!page.LastEvaluatedKey) break;
      } while (startKey);
      head = await this.readHead(tenantId);
      // No head, or the walk reached it; else walk on (from the start if nothing was walked yet).
      if (!head || (previous && head.seq <= previous.seq)) break;
    }
    if (head) report.head = { seq: head.seq, digest: head.digest, occurredAt: head.occurredAt };

    if (!head) return previous ? fail('head_missing', previous.seq, 'records exist but the chain head is missing') : report;
    if (!(await this.headIsAuthentic(tenantId, head)))
      return fail('head_changed', head.seq, 'the chain head was edited outside Keysmith (its seal does not match)');
    if (!previous) return fail('truncated', 1, `the head names record ${head.seq} but no records are stored`);
    if (head.seq > previous.seq)
      return fail('truncated', previous.seq + 1, `the head names record ${head.seq} but the last stored is ${previous.seq}`);
    if (head.seq < previous.seq)
      return fail('inserted', head.seq + 1, `records after the head (${head.seq}) were added outside Keysmith`);
    if (head.digest !== previous.digest) return fail('changed', head.seq, `record ${head.seq} differs from the head's digest`);
    if (expectHead && expectHead.seq > head.seq)
      return fail(
        'rolled_back',
        head.seq,
        `a head kept elsewhere names record ${expectHead.seq}, but the chain ends at ${head.seq}: it was rolled back`,
      );
    if (clients) {
      const problem = await this.checkClients(tenantId, clients, lastChange, head, report.firstSeq);
      if (problem) return fail(problem.kind, problem.seq, problem.detail);
      report.clientsChecked = new Set([...lastChange.keys(), ...clients.listed]).size;
    }
    return report;
  }

  /**
   * Each client the chain names, and each the main table lists, read through its seals: a client the chain
   * deleted must not be back, a client's sealed last change (`auditSeq`) must be the last record naming it, and a
   * client refused as stale (an older client item written back) is reported. Changes committed while verifying
   * are told apart by re-reading the head.
   */
  private async checkClients(
    tenantId: string,
    clients: NonNullable<VerifyOptions['clients']>,
    lastChange: ReadonlyMap<string, { seq: number; action: string }>,
    head: ChainHead,
    firstSeq: number | undefined,
  ): Promise<NonNullable<ChainReport['problem']> | undefined> {
    let latestHead = head.seq;
    for (const clientId of new Set([...lastChange.keys(), ...clients.listed])) {
      const named = lastChange.get(clientId);
      const found = await clients.inspect(clientId);
      if (found.status === 'refused')
        return {
          kind: found.reason === 'client_stale' ? 'rolled_back' : 'changed',
          seq: named?.seq ?? 0,
          detail: `client ${clientId} fails its integrity check (${found.reason}) in the main table`,
        };
      // A client removed around Keysmith is deletion (availability), not hidden history.
      if (found.status === 'absent') continue;
      const { auditSeq } = found.found.client;
      if (named && named.action === 'client.deleted' && auditSeq <= named.seq)
        return {
          kind: 'rolled_back',
          seq: named.seq,
          detail: `client ${clientId} was deleted by record ${named.seq} but its items are back`,
        };
      if (named && auditSeq === named.seq) continue;
      if (auditSeq > latestHead) latestHead = (await this.readHead(tenantId))?.seq ?? latestHead;
      // Changed by a record committed after the walk: nothing to compare with yet.
      if (auditSeq > head.seq && auditSeq <= latestHead) continue;
      // With retention, the record of an old last change may have expired.
      if (this.retentionDays && firstSeq !== undefined && auditSeq < firstSeq && !named) continue;
      return {
        kind: 'rolled_back',
        seq: auditSeq,
        detail:
          auditSeq > latestHead
            ? `client ${clientId} was last changed by record ${auditSeq}, but the chain ends at ${latestHead}: records were cut and an older head written back`
            : `client ${clientId}'s seal names record ${auditSeq} as its last change, but the chain ${named ? `names it last in record ${named.seq}` : 'does not name it'}`,
      };
    }
    return undefined;
  }
}

/**
 * Whether a decrypt failure came from the key service rather than from the message: an AWS SDK error, or the
 * Encryption SDK's KMS keyring reporting that its KMS calls failed.
 */
function keyUnavailable(error: unknown): boolean {
  const e = error as { name?: unknown; $metadata?: unknown; $fault?: unknown; message?: unknown };
  const text = `${String(e?.name ?? '')} ${String(e?.message ?? '')}`;
  // KMS refusing the data key itself (a ciphertext edited or moved in from elsewhere) is tampering, not an outage.
  if (/InvalidCiphertext|IncorrectKey/.test(text)) return false;
  return e?.$metadata !== undefined || e?.$fault !== undefined || /KMS CMKs had an error/.test(text);
}

/** The error for a key-service failure: access denied (a deployment fault, with its action) or unavailable (retry). */
function auditUnavailable(error: unknown, what: 'encrypted' | 'decrypted'): Error {
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
