/**
 * Service clients and access keys in DynamoDB, read through their seals (contract §14: the table is untrusted).
 *
 * A client item carries a seal over its whole state: its own fields, its version, and the digest of every key
 * item it has (`keyDigests`). A key item is trusted only when its digest is the one its client's seal names, so
 * an injected key, an edited key or an older copy of a key item is refused. Every change writes the client item
 * anew (version + 1, naming the audit record of the change), re-writes each key that is not revoked with that
 * version in it, and re-writes the client's state witness (its version). An older copy of the client item
 * written back alone then disagrees with the witness and with the keys' versions, and the client is treated as
 * absent. What stays possible is rolling back a client's items all together (see README).
 *
 * Reads are single requests; writes are returned as transaction items so that the service can commit them
 * together with their audit record.
 */
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteItem } from './dynamodb.ts';
import { InvalidRequestError } from './errors.ts';
import { CLIENT_ID, EVENT_ID, KEY_ID, TENANT_ID } from './ids.ts';
import { type AccessKey, ALGORITHMS, type ClientWithKeys, PLATFORM_ADMIN_SCOPE, type ServiceClient } from './model.ts';
import { type SealKey, sealMessage } from './seal.ts';
import { keys } from './tables.ts';

/** One page of a list. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

type Item = Record<string, unknown>;

/** Why a stored item was refused: logged and counted, never shown to a caller. */
export type TamperReason =
  | 'client_unsealed'
  | 'client_seal_invalid'
  | 'client_malformed'
  | 'client_misplaced'
  | 'client_stale'
  | 'key_malformed'
  | 'key_not_sealed'
  | 'key_misplaced'
  | 'audit_head_invalid'
  | 'audit_head_missing'
  | 'audit_head_rolled_back'
  | 'audit_record_invalid'
  | 'audit_record_missing';

/** An item that failed its integrity check (it is then treated as absent). */
export interface TamperReport {
  reason: TamperReason;
  tenantId?: string;
  /** The audit record refused (its eventId), for the audit reasons. */
  eventId?: string;
  clientId?: string;
  keyId?: string;
}

/** A client item read and checked against its seal, with the key digests the seal names. */
interface OpenedClient {
  client: ServiceClient;
  keyDigests: Record<string, string>;
}

/** What {@link ClientStore.inspectClient} found. */
export type ClientInspection =
  | { status: 'absent' }
  | { status: 'refused'; reason: TamperReason }
  | { status: 'ok'; found: ClientWithKeys };

/** Receives each refused item (the handlers log it and count it as a metric operators can alarm on). */
export type TamperListener = (report: TamperReport) => void;

// Strict readers of stored items: a field of the wrong type (a NULL where a string belongs, a number for a map, an
// object with another prototype) is tampering, refused before anything is canonicalized. Two stored values that a
// lenient reader would map to one domain value (absent and NULL, say) could otherwise share one seal.
const isText = (value: unknown): value is string => typeof value === 'string';
const isOptionalText = (value: unknown): value is string | undefined => value === undefined || typeof value === 'string';
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isInstant = (value: unknown): value is string => isText(value) && Number.isFinite(Date.parse(value));
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
const isTextMap = (value: unknown): value is Record<string, string> => isPlainObject(value) && Object.values(value).every(isText);

function toClient(item: Item): ServiceClient | undefined {
  const { clientId, tenantId, name, description, scopes, tags, enabled, createdAt, updatedAt, version, auditEventId } = item;
  if (!isText(clientId) || !CLIENT_ID.test(clientId) || !isText(tenantId) || !TENANT_ID.test(tenantId)) return undefined;
  if (!isText(name) || !isOptionalText(description) || !Array.isArray(scopes) || !scopes.every(isText)) return undefined;
  if (!isTextMap(tags) || typeof enabled !== 'boolean' || !isInstant(createdAt) || !isInstant(updatedAt)) return undefined;
  if (!isCount(version) || !isText(auditEventId) || !EVENT_ID.test(auditEventId)) return undefined;
  return {
    clientId,
    tenantId,
    name,
    ...(description !== undefined ? { description } : {}),
    scopes: [...scopes],
    tags: { ...tags },
    enabled,
    createdAt,
    updatedAt,
    version,
    auditEventId,
  };
}

function toAccessKey(item: Item): AccessKey | undefined {
  const {
    keyId,
    clientId,
    tenantId,
    algorithm,
    publicKey,
    origin,
    status,
    createdAt,
    expiresAt,
    revokedAt,
    rolledAt,
    replacedBy,
    sealedVersion,
  } = item;
  if (!isText(keyId) || !KEY_ID.test(keyId) || !isText(clientId) || !isText(tenantId)) return undefined;
  if (!isText(algorithm) || !(ALGORITHMS as readonly string[]).includes(algorithm) || !isTextMap(publicKey)) return undefined;
  if ((origin !== 'generated' && origin !== 'registered') || (status !== 'active' && status !== 'revoked')) return undefined;
  if (!isInstant(createdAt) || !(expiresAt === undefined || isInstant(expiresAt))) return undefined;
  if (!(revokedAt === undefined || isInstant(revokedAt)) || !isCount(sealedVersion)) return undefined;
  // Rolled: both or neither, and a rolled key always has the end of its grace period as its expiry.
  if (rolledAt !== undefined || replacedBy !== undefined) {
    if (!isInstant(rolledAt) || !isText(replacedBy) || !KEY_ID.test(replacedBy) || expiresAt === undefined) return undefined;
  }
  return {
    keyId,
    clientId,
    tenantId,
    algorithm: algorithm as AccessKey['algorithm'],
    publicKey: { ...publicKey } as AccessKey['publicKey'],
    origin,
    status,
    createdAt,
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(revokedAt !== undefined ? { revokedAt } : {}),
    ...(rolledAt !== undefined ? { rolledAt, replacedBy: replacedBy as string } : {}),
    sealedVersion,
  };
}

const sortedEntries = (record: Record<string, unknown>): [string, unknown][] =>
  Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * The digest of everything a key item says that matters (not the TTL attribute; usage, `lastUsedAt`, lives in a table
 * of its own and is never sealed). A rolled key's two members are appended only when present, so the digests of keys
 * sealed before rolling existed stay as they were.
 */
export function keyDigest(key: AccessKey): string {
  return sealMessage('key', [
    key.clientId,
    key.keyId,
    key.tenantId,
    key.algorithm,
    sortedEntries(key.publicKey),
    key.origin,
    key.status,
    key.createdAt,
    key.expiresAt ?? null,
    key.revokedAt ?? null,
    key.sealedVersion,
    ...(key.rolledAt !== undefined ? [key.rolledAt, key.replacedBy ?? null] : []),
  ]);
}

/** The message a client's seal covers: all its fields, its version and the digests of its keys. */
function clientSealMessage(client: ServiceClient, keyDigests: Record<string, string>): string {
  return sealMessage('client', [
    client.clientId,
    client.tenantId,
    client.name,
    client.description ?? null,
    client.scopes,
    sortedEntries(client.tags),
    client.enabled,
    client.createdAt,
    client.updatedAt,
    client.version,
    client.auditEventId,
    sortedEntries(keyDigests),
  ]);
}

/** Opaque page cursors: base64url JSON of the sort position only; the partition always comes from the request. */
function encodeCursor(position: string): string {
  return Buffer.from(JSON.stringify({ p: position })).toString('base64url');
}

function decodeCursor(cursor: string, pattern: RegExp): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const position = (parsed as { p?: unknown }).p;
    if (typeof position === 'string' && pattern.test(position)) return position;
  } catch {
    // fall through
  }
  throw new InvalidRequestError('cursor is not a cursor this list returned.', 'invalid_cursor');
}

const CLIENT_SORT_POSITION = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#sc_[0-9A-Za-z]{22}$/;
const KEY_SORT_POSITION = /^[0-9A-Za-z]{8,16}$/;

/**
 * One page of a client's keys (as {@link ClientStore.getClientWithKeys} read them) in keyId order, revoked ones
 * included so the history stays visible. At most 90 keys: they are paged in memory from the one read.
 */
export function keyPage(clientKeys: readonly AccessKey[], limit: number, cursor?: string): Page<AccessKey> {
  const after = cursor ? decodeCursor(cursor, KEY_SORT_POSITION) : '';
  const sorted = clientKeys.filter((k) => k.keyId > after).sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
  const items = sorted.slice(0, limit);
  const last = items.at(-1);
  return sorted.length > limit && last ? { items, nextCursor: encodeCursor(last.keyId) } : { items };
}

/** Revoked and expired keys stay listed for this long, then DynamoDB TTL removes them. */
export const KEY_RETENTION_DAYS = 30;
const removalEpoch = (fromMs: number): number => Math.floor(fromMs / 1000) + KEY_RETENTION_DAYS * 86_400;

/**
 * The sort key of each client's state witness: an item holding only the client's version, re-written by every
 * change. An older copy of the client item written back alone then disagrees with it, also for a client with no
 * key to show a newer version.
 */
const STATE_SORT_KEY = 'STATE';

/** The sparse index entry of clients holding `keysmith:platform-admin` (found when guarding against lock-out). */
const PLATFORM_ADMIN_ROLE = 'ROLE#platform-admin';

/** Options of {@link ClientStore}. */
export interface ClientStoreOptions {
  /** A DynamoDB document client (a real one, DynamoDB Local's, or one that injects faults). */
  documentClient: DynamoDBDocumentClient;
  /** The main table's name. */
  tableName: string;
  /** Seals what is written and checks what is read. Readers' keys may only verify. */
  sealKey: SealKey;
  /** Told about every item refused by its seal. @default nothing */
  onTamper?: TamperListener;
}

/** A client's next state, as the service plans it. */
export interface ClientStateChange {
  /** The client at its next version, with the seq of the audit record its change writes. */
  client: ServiceClient;
  /** Every key the client keeps (changed ones and unchanged ones); a key left out is not named by the seal. */
  keys: AccessKey[];
  /** The version the stored client must still have; undefined for a new client. */
  expectedVersion: number | undefined;
  /** Keys that are new: their write fails if the keyId is taken. */
  newKeyIds?: readonly string[];
}

/** Reads service clients and keys through their seals, and builds the sealed transaction items that change them. */
export class ClientStore {
  readonly tableName: string;
  private readonly db: DynamoDBDocumentClient;
  private readonly sealKey: SealKey;
  private readonly onTamper: TamperListener;

  constructor({ documentClient, tableName, sealKey, onTamper = () => undefined }: ClientStoreOptions) {
    this.db = documentClient;
    this.tableName = tableName;
    this.sealKey = sealKey;
    this.onTamper = onTamper;
  }

  /** The client of a stored item with the key digests its seal names, or why it was refused (and reported). */
  private async openClient(item: Item): Promise<OpenedClient | { refused: TamperReason }> {
    const report = (reason: TamperReason) => {
      this.onTamper({ reason, clientId: String(item.clientId), tenantId: String(item.tenantId) });
      return { refused: reason };
    };
    const { seal, keyDigests } = item;
    if (!(seal instanceof Uint8Array) || !isTextMap(keyDigests)) return report('client_unsealed');
    const client = toClient(item);
    if (!client) return report('client_malformed');
    if (item.pk !== keys.clientPartition(client.clientId) || item.sk !== 'CLIENT') return report('client_misplaced');
    // The index attributes follow from sealed fields: one removed or moved hides the client from lists (and from
    // `audit verify`'s cross-check) while it still works, so such an item is refused too.
    const platformAdmin = client.scopes.includes(PLATFORM_ADMIN_SCOPE);
    if (
      item.gsi1pk !== keys.tenantClients(client.tenantId) ||
      item.gsi1sk !== keys.tenantClientSort(client.createdAt, client.clientId) ||
      item.gsi2pk !== (platformAdmin ? PLATFORM_ADMIN_ROLE : undefined) ||
      item.gsi2sk !== (platformAdmin ? client.clientId : undefined)
    )
      return report('client_misplaced');
    if (!(await this.sealKey.verify(clientSealMessage(client, keyDigests), seal))) return report('client_seal_invalid');
    return { client, keyDigests };
  }

  /** A client by id, or undefined (also when its items are not authentic). Strongly consistent. */
  async getClient(clientId: string): Promise<ServiceClient | undefined> {
    return (await this.getClientWithKeys(clientId))?.client;
  }

  /**
   * A client and the keys its seal names, in one request (one Query of the client's partition), or undefined.
   * The client is absent when its seal fails, and also when its partition shows a newer state than the client item
   * (the state witness, or a key written at a later version): an older copy of the client item written back alone.
   * A key item whose digest is not the sealed one is left out (and reported); a key named but missing is simply
   * absent (DynamoDB TTL removes old keys).
   */
  async getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined> {
    const inspected = await this.inspectClient(clientId);
    return inspected.status === 'ok' ? inspected.found : undefined;
  }

  /** What the store finds of a client: nothing, an item refused (and why), or the client and its sealed keys. */
  async inspectClient(clientId: string): Promise<ClientInspection> {
    if (!CLIENT_ID.test(clientId)) return { status: 'absent' };
    let clientItem: Item | undefined;
    let witness: Item | undefined;
    const keyItems: Item[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': keys.clientPartition(clientId) },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        if (item.sk === 'CLIENT') clientItem = item;
        else if (item.sk === STATE_SORT_KEY) witness = item;
        else keyItems.push(item);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    if (!clientItem) return { status: 'absent' };
    const opened = await this.openClient(clientItem);
    if ('refused' in opened) return { status: 'refused', reason: opened.refused };
    const { client, keyDigests } = opened;
    const stale = (): ClientInspection => {
      this.onTamper({ reason: 'client_stale', clientId, tenantId: client.tenantId });
      return { status: 'refused', reason: 'client_stale' };
    };
    if (witness?.version !== client.version) return stale();
    const accessKeys: AccessKey[] = [];
    for (const item of keyItems) {
      const key = toAccessKey(item);
      const report = (reason: TamperReason) =>
        this.onTamper({ reason, clientId, tenantId: client.tenantId, keyId: String(item.keyId) });
      if (!key) report('key_malformed');
      else if (key.sealedVersion > client.version) return stale();
      else if (
        item.sk !== keys.accessKey(clientId, key.keyId).sk ||
        key.clientId !== clientId ||
        key.tenantId !== client.tenantId
      )
        report('key_misplaced');
      else if (!Object.hasOwn(keyDigests, key.keyId) || keyDigests[key.keyId] !== keyDigest(key)) report('key_not_sealed');
      else accessKeys.push(key);
    }
    return { status: 'ok', found: { client, keys: accessKeys } };
  }

  /** A tenant's clients, newest first (an item that is not authentic is left out, and reported). */
  async listClients(tenantId: string, limit: number, cursor?: string): Promise<Page<ServiceClient>> {
    const pk = keys.tenantClients(tenantId);
    const position = cursor ? decodeCursor(cursor, CLIENT_SORT_POSITION) : undefined;
    const { Items = [] } = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'byTenant',
        KeyConditionExpression: position ? 'gsi1pk = :pk AND gsi1sk < :position' : 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': pk, ...(position ? { ':position': position } : {}) },
        ScanIndexForward: false,
        Limit: limit + 1,
      }),
    );
    const page = Items.slice(0, limit);
    const opened = await Promise.all(page.map((item) => this.openClient(item)));
    const items = opened.flatMap((o) => ('client' in o && o.client.tenantId === tenantId ? [o.client] : []));
    const last = page.at(-1);
    return Items.length > limit && last ? { items, nextCursor: encodeCursor(String(last.gsi1sk)) } : { items };
  }

  /** The clientIds the sparse platform-admin index names (eventually consistent: read each one before trusting it). */
  async listPlatformAdminIds(): Promise<string[]> {
    const ids: string[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'byRole',
          KeyConditionExpression: 'gsi2pk = :role',
          ExpressionAttributeValues: { ':role': PLATFORM_ADMIN_ROLE },
          ProjectionExpression: 'clientId',
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) if (typeof item.clientId === 'string') ids.push(item.clientId);
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return ids;
  }

  /**
   * The items that write a client's next state: the client item, sealed over its fields and the digest of every
   * key it keeps; each key item that changed or is not revoked, re-written with the client's new version; and the
   * state witness. Revoked keys that did not change keep their item (and their digest) as they are.
   */
  async writeState({
    client,
    keys: clientKeys,
    expectedVersion,
    newKeyIds = [],
  }: ClientStateChange): Promise<TransactWriteItem[]> {
    const keyDigests: Record<string, string> = {};
    const items: TransactWriteItem[] = [];
    for (const key of clientKeys) {
      // Every key that is not revoked (expired ones too: expiry is a matter of the reader's clock) carries the version.
      const rewrite = key.sealedVersion === client.version || key.status === 'active';
      const stored: AccessKey = rewrite ? { ...key, sealedVersion: client.version } : key;
      keyDigests[stored.keyId] = keyDigest(stored);
      if (rewrite) items.push(this.putKey(stored, newKeyIds.includes(stored.keyId)));
    }
    const seal = await this.sealKey.seal(clientSealMessage(client, keyDigests));
    const isPlatformAdmin = client.scopes.includes(PLATFORM_ADMIN_SCOPE);
    items.unshift({
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.client(client.clientId),
          gsi1pk: keys.tenantClients(client.tenantId),
          gsi1sk: keys.tenantClientSort(client.createdAt, client.clientId),
          ...(isPlatformAdmin ? { gsi2pk: PLATFORM_ADMIN_ROLE, gsi2sk: client.clientId } : {}),
          type: 'client',
          ...client,
          keyDigests,
          seal,
        },
        ...(expectedVersion === undefined
          ? { ConditionExpression: 'attribute_not_exists(pk)' }
          : { ConditionExpression: 'version = :expected', ExpressionAttributeValues: { ':expected': expectedVersion } }),
      },
    });
    items.push({
      Put: { TableName: this.tableName, Item: { ...keys.client(client.clientId), sk: STATE_SORT_KEY, version: client.version } },
    });
    return items;
  }

  private putKey(key: AccessKey, isNew: boolean): TransactWriteItem {
    // Revoked and expired keys are removed by DynamoDB TTL 30 days later (deleting them only ever takes access away).
    const removeFrom = key.revokedAt ?? key.expiresAt;
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.accessKey(key.clientId, key.keyId),
          type: 'accessKey',
          ...key,
          ...(removeFrom ? { expiresAtEpoch: removalEpoch(Date.parse(removeFrom)) } : {}),
        },
        ...(isNew ? { ConditionExpression: 'attribute_not_exists(pk)' } : {}),
      },
    };
  }

  /** Fails the transaction unless the client is still at `version` (another admin the lock-out guard relies on). */
  conditionUnchanged(clientId: string, version: number): TransactWriteItem {
    return {
      ConditionCheck: {
        TableName: this.tableName,
        Key: keys.client(clientId),
        ConditionExpression: 'version = :version',
        ExpressionAttributeValues: { ':version': version },
      },
    };
  }

  /** Deletes a client (and its state witness) if it is still at `expectedVersion`. */
  deleteClient(clientId: string, expectedVersion: number): TransactWriteItem[] {
    return [
      {
        Delete: {
          TableName: this.tableName,
          Key: keys.client(clientId),
          ConditionExpression: 'version = :expected',
          ExpressionAttributeValues: { ':expected': expectedVersion },
        },
      },
      { Delete: { TableName: this.tableName, Key: { ...keys.client(clientId), sk: STATE_SORT_KEY } } },
    ];
  }

  /** Deletes a key's item (when its client is deleted). */
  deleteKey(clientId: string, keyId: string): TransactWriteItem {
    return { Delete: { TableName: this.tableName, Key: keys.accessKey(clientId, keyId) } };
  }
}
