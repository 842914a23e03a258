/**
 * Service clients and access keys in DynamoDB. Reads are single requests; writes are returned as
 * transaction items so that the service can commit them together with their audit record.
 */
import { type DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteItem } from './dynamodb.ts';
import { InvalidRequestError } from './errors.ts';
import { CLIENT_ID } from './ids.ts';
import type { AccessKey, ClientWithKeys, ServiceClient } from './model.ts';
import { keys } from './tables.ts';

/** One page of a list. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

type Item = Record<string, unknown>;

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
  };
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
const KEY_SORT_POSITION = /^KEY#[0-9A-Za-z]{8,16}$/;

/** Revoked and expired keys stay listed for this long, then DynamoDB TTL removes them. */
export const KEY_RETENTION_DAYS = 30;
const removalEpoch = (fromMs: number): number => Math.floor(fromMs / 1000) + KEY_RETENTION_DAYS * 86_400;

/** Options of {@link ClientStore}. */
export interface ClientStoreOptions {
  /** A DynamoDB document client (a real one, DynamoDB Local's, or one that injects faults). */
  documentClient: DynamoDBDocumentClient;
  /** The main table's name. */
  tableName: string;
}

/** Reads service clients and keys, and builds the transaction items that change them. */
export class ClientStore {
  readonly tableName: string;
  private readonly db: DynamoDBDocumentClient;

  constructor({ documentClient, tableName }: ClientStoreOptions) {
    this.db = documentClient;
    this.tableName = tableName;
  }

  /** A client by id, or undefined. Strongly consistent. */
  async getClient(clientId: string): Promise<ServiceClient | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.client(clientId), ConsistentRead: true }),
    );
    return Item ? toClient(Item) : undefined;
  }

  /** A client and all its keys in one request (one Query of the client's partition), or undefined. */
  async getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined> {
    if (!CLIENT_ID.test(clientId)) return undefined;
    let client: ServiceClient | undefined;
    const accessKeys: AccessKey[] = [];
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
        if (item.sk === 'CLIENT') client = toClient(item);
        else accessKeys.push(toAccessKey(item));
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return client ? { client, keys: accessKeys } : undefined;
  }

  /** A tenant's clients, newest first. */
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
    const items = Items.slice(0, limit).map(toClient);
    const last = items.at(-1);
    return Items.length > limit && last
      ? { items, nextCursor: encodeCursor(keys.tenantClientSort(last.createdAt, last.clientId)) }
      : { items };
  }

  /** A client's keys in keyId order (revoked ones included, so the history stays visible). */
  async listKeys(clientId: string, limit: number, cursor?: string): Promise<Page<AccessKey>> {
    const position = cursor ? decodeCursor(cursor, KEY_SORT_POSITION) : 'KEY#';
    const { Items = [] } = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND sk BETWEEN :after AND :end',
        ExpressionAttributeValues: { ':pk': keys.clientPartition(clientId), ':after': `${position}\u0000`, ':end': 'KEY$' },
        ConsistentRead: true,
        Limit: limit + 1,
      }),
    );
    const items = Items.slice(0, limit).map(toAccessKey);
    const last = items.at(-1);
    return Items.length > limit && last
      ? { items, nextCursor: encodeCursor(keys.accessKey(last.clientId, last.keyId).sk) }
      : { items };
  }

  /** Writes a new client (fails if the id is taken). */
  putClient(client: ServiceClient): TransactWriteItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.client(client.clientId),
          gsi1pk: keys.tenantClients(client.tenantId),
          gsi1sk: keys.tenantClientSort(client.createdAt, client.clientId),
          type: 'client',
          ...client,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
  }

  /** Replaces a client's item if it is still at `expectedVersion` (the new item carries the next version). */
  replaceClient(client: ServiceClient, expectedVersion: number): TransactWriteItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.client(client.clientId),
          gsi1pk: keys.tenantClients(client.tenantId),
          gsi1sk: keys.tenantClientSort(client.createdAt, client.clientId),
          type: 'client',
          ...client,
        },
        ConditionExpression: 'version = :expected',
        ExpressionAttributeValues: { ':expected': expectedVersion },
      },
    };
  }

  /** Bumps a client's version if it is still at `expectedVersion`: serializes changes to its keys. */
  touchClient(clientId: string, expectedVersion: number, now: string): TransactWriteItem {
    return {
      Update: {
        TableName: this.tableName,
        Key: keys.client(clientId),
        UpdateExpression: 'SET version = :next, updatedAt = :now',
        ConditionExpression: 'version = :expected',
        ExpressionAttributeValues: { ':expected': expectedVersion, ':next': expectedVersion + 1, ':now': now },
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

  /** Writes a new key (fails if its keyId is taken within the client); a key with an expiry is removed 30 days after it. */
  putKey(key: AccessKey): TransactWriteItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.accessKey(key.clientId, key.keyId),
          type: 'accessKey',
          ...key,
          ...(key.expiresAt ? { expiresAtEpoch: removalEpoch(Date.parse(key.expiresAt)) } : {}),
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
  }

  /** Marks an active key revoked; DynamoDB TTL removes it 30 days later. */
  revokeKey(clientId: string, keyId: string, now: string): TransactWriteItem {
    return {
      Update: {
        TableName: this.tableName,
        Key: keys.accessKey(clientId, keyId),
        UpdateExpression: 'SET #status = :revoked, revokedAt = :now, expiresAtEpoch = :removeAt',
        ConditionExpression: '#status = :active',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':revoked': 'revoked',
          ':active': 'active',
          ':now': now,
          ':removeAt': removalEpoch(Date.parse(now)),
        },
      },
    };
  }

  /** Deletes a key's item (when its client is deleted). */
  deleteKey(clientId: string, keyId: string): TransactWriteItem {
    return { Delete: { TableName: this.tableName, Key: keys.accessKey(clientId, keyId) } };
  }
}
