/**
 * Service clients and access keys in DynamoDB, read through their seals (contract §14: the table is untrusted).
 *
 * A client item carries a seal over its whole state: its own fields, its version, and the digest of every key
 * item it has (`keyDigests`). A key item is trusted only when its digest is the one its client's seal names, so
 * an injected key, an edited key or an older copy of a key item is refused. Every change writes the client item
 * anew (version + 1) and re-writes each key that can still sign with that version in it: an older copy of the
 * client item then names digests that no longer match, so writing back a client item from before it was
 * disabled brings back no key. What stays possible is rolling back a client's items all together (see README).
 *
 * Reads are single requests; writes are returned as transaction items so that the service can commit them
 * together with their audit record.
 */
import { type DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteItem } from './dynamodb.ts';
import { InvalidRequestError } from './errors.ts';
import { CLIENT_ID } from './ids.ts';
import { type AccessKey, type ClientWithKeys, isKeyActive, PLATFORM_ADMIN_SCOPE, type ServiceClient } from './model.ts';
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
  | 'client_misplaced'
  | 'key_not_sealed'
  | 'key_misplaced'
  | 'audit_head_invalid'
  | 'audit_head_missing';

/** An item that failed its integrity check (it is then treated as absent). */
export interface TamperReport {
  reason: TamperReason;
  tenantId?: string;
  clientId?: string;
  keyId?: string;
}

/** Receives each refused item (the handlers log it and count it as a metric operators can alarm on). */
export type TamperListener = (report: TamperReport) => void;

function toClient(item: Item): ServiceClient {
  return {
    clientId: item.clientId as string,
    tenantId: item.tenantId as string,
    name: item.name as string,
    ...(item.description !== undefined ? { description: item.description as string } : {}),
    scopes: (item.scopes as string[] | undefined) ?? [],
    tags: (item.tags as Record<string, string> | undefined) ?? {},
    enabled: item.enabled as boolean,
    createdAt: item.createdAt as string,
    updatedAt: item.updatedAt as string,
    version: item.version as number,
  };
}

function toAccessKey(item: Item): AccessKey {
  return {
    keyId: item.keyId as string,
    clientId: item.clientId as string,
    tenantId: item.tenantId as string,
    algorithm: item.algorithm as AccessKey['algorithm'],
    publicKey: item.publicKey as AccessKey['publicKey'],
    origin: item.origin as AccessKey['origin'],
    status: item.status as AccessKey['status'],
    createdAt: item.createdAt as string,
    ...(item.expiresAt !== undefined ? { expiresAt: item.expiresAt as string } : {}),
    ...(item.revokedAt !== undefined ? { revokedAt: item.revokedAt as string } : {}),
    sealedVersion: item.sealedVersion as number,
  };
}

const sortedEntries = (record: Record<string, unknown>): [string, unknown][] =>
  Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** The digest of everything a key item says that matters (not the TTL attribute, not usage data). */
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

/** Revoked and expired keys stay listed for this long, then DynamoDB TTL removes them. */
export const KEY_RETENTION_DAYS = 30;
const removalEpoch = (fromMs: number): number => Math.floor(fromMs / 1000) + KEY_RETENTION_DAYS * 86_400;

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
  /** The clock, in ms (which keys can still sign, and so are re-written with each change). @default Date.now */
  now?: () => number;
}

/** A client's next state, as the service plans it. */
export interface ClientStateChange {
  /** The client at its next version. */
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
  private readonly now: () => number;

  constructor({ documentClient, tableName, sealKey, onTamper = () => undefined, now = Date.now }: ClientStoreOptions) {
    this.db = documentClient;
    this.tableName = tableName;
    this.sealKey = sealKey;
    this.onTamper = onTamper;
    this.now = now;
  }

  /** The client of a stored item with the key digests its seal names, or undefined (reported) when it is not authentic. */
  private async openClient(item: Item): Promise<{ client: ServiceClient; keyDigests: Record<string, string> } | undefined> {
    const client = toClient(item);
    const report = (reason: TamperReason) => {
      this.onTamper({ reason, clientId: String(item.clientId), tenantId: String(item.tenantId) });
      return undefined;
    };
    const seal = item.seal;
    const keyDigests = item.keyDigests;
    if (!(seal instanceof Uint8Array) || typeof keyDigests !== 'object' || keyDigests === null) return report('client_unsealed');
    if (item.pk !== keys.clientPartition(client.clientId) || item.sk !== 'CLIENT') return report('client_misplaced');
    const digests = keyDigests as Record<string, string>;
    if (!(await this.sealKey.verify(clientSealMessage(client, digests), seal))) return report('client_seal_invalid');
    return { client, keyDigests: digests };
  }

  /** A client by id, or undefined (also when its item is not authentic). Strongly consistent. */
  async getClient(clientId: string): Promise<ServiceClient | undefined> {
    if (!CLIENT_ID.test(clientId)) return undefined;
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.client(clientId), ConsistentRead: true }),
    );
    return Item ? (await this.openClient(Item))?.client : undefined;
  }

  /**
   * A client and the keys its seal names, in one request (one Query of the client's partition), or undefined.
   * A key item whose digest is not the sealed one is left out (and reported); a key named but missing is simply
   * absent (DynamoDB TTL removes old keys).
   */
  async getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined> {
    if (!CLIENT_ID.test(clientId)) return undefined;
    let clientItem: Item | undefined;
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
        else keyItems.push(item);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    if (!clientItem) return undefined;
    const opened = await this.openClient(clientItem);
    if (!opened) return undefined;
    const { client, keyDigests } = opened;
    const accessKeys: AccessKey[] = [];
    for (const item of keyItems) {
      const key = toAccessKey(item);
      const report = (reason: TamperReason) =>
        this.onTamper({ reason, clientId, tenantId: client.tenantId, keyId: String(item.keyId) });
      if (item.sk !== keys.accessKey(clientId, key.keyId).sk || key.clientId !== clientId || key.tenantId !== client.tenantId)
        report('key_misplaced');
      else if (!Object.hasOwn(keyDigests, key.keyId) || keyDigests[key.keyId] !== keyDigest(key)) report('key_not_sealed');
      else accessKeys.push(key);
    }
    return { client, keys: accessKeys };
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
    const items = opened.flatMap((o) => (o && o.client.tenantId === tenantId ? [o.client] : []));
    const last = page.at(-1);
    return Items.length > limit && last ? { items, nextCursor: encodeCursor(String(last.gsi1sk)) } : { items };
  }

  /** A client's keys in keyId order (revoked ones included, so the history stays visible), or undefined. */
  async listKeys(clientId: string, limit: number, cursor?: string): Promise<Page<AccessKey> | undefined> {
    const after = cursor ? decodeCursor(cursor, KEY_SORT_POSITION) : '';
    const found = await this.getClientWithKeys(clientId);
    if (!found) return undefined;
    const sorted = found.keys.filter((k) => k.keyId > after).sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
    const items = sorted.slice(0, limit);
    const last = items.at(-1);
    return sorted.length > limit && last ? { items, nextCursor: encodeCursor(last.keyId) } : { items };
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
   * key it keeps, and each key item that changed or can still sign, re-written with the client's new version.
   * Keys that can no longer sign and did not change keep their item (and their digest) as they are.
   */
  async writeState({
    client,
    keys: clientKeys,
    expectedVersion,
    newKeyIds = [],
  }: ClientStateChange): Promise<TransactWriteItem[]> {
    const now = this.now();
    const keyDigests: Record<string, string> = {};
    const items: TransactWriteItem[] = [];
    for (const key of clientKeys) {
      const rewrite = key.sealedVersion === client.version || isKeyActive(key, now);
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

  /** Deletes a client if it is still at `expectedVersion`. */
  deleteClient(clientId: string, expectedVersion: number): TransactWriteItem {
    return {
      Delete: {
        TableName: this.tableName,
        Key: keys.client(clientId),
        ConditionExpression: 'version = :expected',
        ExpressionAttributeValues: { ':expected': expectedVersion },
      },
    };
  }

  /** Deletes a key's item (when its client is deleted). */
  deleteKey(clientId: string, keyId: string): TransactWriteItem {
    return { Delete: { TableName: this.tableName, Key: keys.accessKey(clientId, keyId) } };
  }
}
