/**
 * When each key was last used (contract §11), kept apart from everything that grants access.
 *
 * The authorizer and the token endpoint record a key's use in the usage table (one item per client, one attribute per
 * key), at most once per key per window on a warm container, off the request path: the write is started and not
 * waited for, and a failed one is logged and counted, never turned into a denial. Their roles may write that table
 * and nothing else, so what a compromised authorizer can forge is a time, not access. The table is not sealed and not
 * audited: `lastUsedAt` is a hint for retiring keys, not a record of who did what.
 */
import { BatchGetCommand, type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteItem } from './dynamodb.ts';
import { KEY_ID } from './ids.ts';
import { keys, usageAttribute } from './tables.ts';

/** Told about each failed usage write: the error's name only (never a token or key). */
export type UsageFailureListener = (failure: { errorName: string; clientId: string; keyId: string }) => void;

/** Options of {@link UsageRecorder}. */
export interface UsageRecorderOptions {
  documentClient: DynamoDBDocumentClient;
  tableName: string;
  /** A key's use is written at most once per this many seconds (`KEYSMITH_LAST_USED_SECONDS`). */
  windowSeconds: number;
  /** Told about every write that failed. @default nothing */
  onFailure?: UsageFailureListener;
  /** Keys whose last write is remembered; one forgotten is written again on its next use. @default 10000 */
  maxTrackedKeys?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

/** After a failed write, the key's use is tried again this soon (or at the next window, if that is sooner). */
const RETRY_AFTER_FAILURE_MS = 10_000;

const CONDITION_FAILED = 'ConditionalCheckFailedException';
/** Clocks of two machines may disagree by this much. */
const FUTURE_SKEW_MS = 60_000;

/** Records key uses: {@link record} never throws and never waits. */
export class UsageRecorder {
  private readonly db: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly windowMs: number;
  private readonly onFailure: UsageFailureListener;
  private readonly maxTracked: number;
  private readonly now: () => number;
  /** clientId.keyId → when a write of its use was last started (ms), oldest first (an LRU by insertion). */
  private readonly written = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  /** Writes started (for tests and the benchmark). */
  writes = 0;

  constructor({ documentClient, tableName, windowSeconds, onFailure, maxTrackedKeys, now }: UsageRecorderOptions) {
    this.db = documentClient;
    this.tableName = tableName;
    this.windowMs = windowSeconds * 1000;
    this.onFailure = onFailure ?? (() => undefined);
    this.maxTracked = maxTrackedKeys ?? 10_000;
    this.now = now ?? Date.now;
  }

  /** Notes that `keyId` of `clientId` signed a token that was accepted; writes it if its window has passed. */
  record(clientId: string, keyId: string): void {
    try {
      const at = this.now();
      const id = `${clientId}.${keyId}`;
      const last = this.written.get(id);
      if (last !== undefined && at - last < this.windowMs) return;
      this.written.delete(id);
      this.written.set(id, at);
      if (this.written.size > this.maxTracked) this.written.delete(this.written.keys().next().value as string);
      this.writes++;
      const write = this.write(clientId, keyId, at).finally(() => this.pending.delete(write));
      this.pending.add(write);
    } catch {
      // Never a reason to deny: the use goes unrecorded.
    }
  }

  /** Waits for the writes started so far (tests, the benchmark, a local server shutting down). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private async write(clientId: string, keyId: string, at: number): Promise<void> {
    const iso = new Date(at).toISOString();
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.usage(clientId),
          UpdateExpression: 'SET #used = :at',
          // Only forward: a container whose clock or write is behind another's never moves the time back. What is not
          // a time that could be true (another type, a date in the future, any string sorting after it) is replaced,
          // so a value written around Keysmith cannot freeze a key's lastUsedAt.
          ConditionExpression:
            'attribute_not_exists(#used) OR NOT attribute_type(#used, :string) OR #used < :at OR #used > :future',
          ExpressionAttributeNames: { '#used': usageAttribute(keyId) },
          ExpressionAttributeValues: { ':at': iso, ':string': 'S', ':future': new Date(at + FUTURE_SKEW_MS).toISOString() },
        }),
      );
    } catch (error) {
      const errorName = typeof (error as Error)?.name === 'string' ? (error as Error).name : 'Unknown';
      if (errorName === CONDITION_FAILED) return;
      // Tried again soon rather than a window later, but not on every use: an outage is not a flood of writes.
      const id = `${clientId}.${keyId}`;
      if (this.written.get(id) === at) this.written.set(id, at - this.windowMs + Math.min(this.windowMs, RETRY_AFTER_FAILURE_MS));
      this.onFailure({ errorName, clientId, keyId });
    }
  }
}

/** A client's recorded uses: each key's last use, and the latest of them. */
export interface ClientUsage {
  /** keyId → ISO 8601 time. */
  keys: ReadonlyMap<string, string>;
  lastUsedAt: string | undefined;
}

const NO_USAGE: ClientUsage = { keys: new Map(), lastUsedAt: undefined };

/** A recorded time is trusted as a time only: ISO 8601 UTC as the recorder writes it, and not in the future. */
const RECORDED_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function toUsage(item: Record<string, unknown> | undefined, nowMs: number): ClientUsage {
  if (!item) return NO_USAGE;
  const used = new Map<string, string>();
  let latest: string | undefined;
  for (const [name, value] of Object.entries(item)) {
    if (!name.startsWith('key_') || typeof value !== 'string' || !RECORDED_TIME.test(value)) continue;
    const keyId = name.slice(4);
    const ms = Date.parse(value);
    if (!KEY_ID.test(keyId) || !(ms <= nowMs + FUTURE_SKEW_MS)) continue;
    used.set(keyId, value);
    if (latest === undefined || value > latest) latest = value;
  }
  return { keys: used, lastUsedAt: latest };
}

/** Reads the usage table for the management API's views. */
export class UsageReader {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** One client's uses (one GetItem). */
  async forClient(clientId: string): Promise<ClientUsage> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.usage(clientId) }));
    return toUsage(Item, this.now());
  }

  /** The uses of a page of clients (one BatchGetItem per 100, retried for what DynamoDB leaves unprocessed). */
  async forClients(clientIds: readonly string[]): Promise<Map<string, ClientUsage>> {
    const found = new Map<string, ClientUsage>();
    const unique = [...new Set(clientIds)];
    for (let i = 0; i < unique.length; i += 100) {
      let request: Record<string, unknown>[] | undefined = unique.slice(i, i + 100).map((id) => keys.usage(id));
      for (let attempt = 0; request && request.length > 0; attempt++) {
        if (attempt > 8) throw Object.assign(new Error('usage reads left unprocessed'), { name: 'ThrottlingException' });
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** attempt)));
        const { Responses, UnprocessedKeys } = await this.db.send(
          new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: request } } }),
        );
        const now = this.now();
        for (const item of Responses?.[this.tableName] ?? [])
          if (typeof item.pk === 'string') found.set(item.pk.slice('CLIENT#'.length), toUsage(item, now));
        request = UnprocessedKeys?.[this.tableName]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    for (const id of unique) if (!found.has(id)) found.set(id, NO_USAGE);
    return found;
  }

  /** Removes a deleted client's usage item (the client's deletion transaction holds it). */
  deleteItem(clientId: string): TransactWriteItem {
    return { Delete: { TableName: this.tableName, Key: keys.usage(clientId) } };
  }
}
