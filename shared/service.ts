/**
 * Keysmith's operations on service clients and access keys. Plain arguments in, domain objects out; every
 * change is one DynamoDB transaction holding the change and its audit record, retried from a fresh read
 * when a concurrent change to the same client wins the race. The audit record touches no shared item (the
 * linker chains records afterwards), so changes to different clients of one tenant never conflict.
 */
import { BatchWriteCommand, type DynamoDBDocumentClient, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { formatAccessKey, generateAccessKeyPair, importPublicJwk } from './access-key.ts';
import { assertCanGrant, assertCanManage } from './admins.ts';
import type { AuditEventInput, AuditLog } from './audit/log.ts';
import { cancellationReasons, type TransactWriteItem } from './dynamodb.ts';
import { ConflictError, InvalidRequestError, NotFoundError, ServiceUnavailableError } from './errors.ts';
import { newClientId, newEventId, newKeyId, TENANT_ID } from './ids.ts';
import {
  type AccessKey,
  type Actor,
  type Algorithm,
  type ClientWithKeys,
  countsTowardKeyLimit,
  isEffectivePlatformAdmin,
  isKeyActive,
  keyStatus,
  MAX_ROLLING_KEYS,
  type PublicJwk,
  ROLL_GRACE_SECONDS,
  type ServiceClient,
} from './model.ts';
import type { CreateClientBody, CreateKeyBody, RollKeyBody, UpdateClientBody } from './schemas.ts';
import { type ClientStateChange, type ClientStore, keyPage, type Page } from './store.ts';
import { keys as tableKeys } from './tables.ts';
import type { UsageReader } from './usage.ts';

/** At most this many active keys per client (contract §5). */
export const MAX_ACTIVE_KEYS = 5;
/**
 * Keys a client may have stored at once (active, expired, or revoked and not yet removed by DynamoDB TTL, 30 days
 * after revocation or expiry). It bounds the authorizer's read, and lets a client be deleted with all its keys and
 * the audit record in one transaction (TransactWriteItems holds at most 100 items).
 */
export const MAX_STORED_KEYS = 90;
/**
 * Keys that fit one TransactWriteItems (100 items) beside the client item, its state witness, its usage item and the
 * audit record.
 */
const MAX_TRANSACTION_KEYS = 95;

const MAX_ATTEMPTS = 20;

/** Where a change came from, for its audit record. */
export interface RequestMeta {
  requestId?: string;
  sourceIp?: string;
}

/** A created key; `accessKey` only when Keysmith generated the pair (shown once, never stored). */
export interface CreatedKey {
  key: AccessKey;
  accessKey?: string;
}

/** Options of {@link KeysmithService}. */
export interface KeysmithServiceOptions {
  documentClient: DynamoDBDocumentClient;
  store: ClientStore;
  audit: AuditLog;
  /** The usage table, whose item of a client goes with it when it is deleted. @default none */
  usage?: Pick<UsageReader, 'deleteItem'>;
  /** The clock. @default Date.now */
  now?: () => number;
}

/** A key's public half, generated (with the private half, handed out once) or the caller's own. */
interface KeyMaterial {
  algorithm: Algorithm;
  publicKey: PublicJwk;
  privateKeyPkcs8?: string;
}

/**
 * A change to commit, or (`audit` absent) nothing to change: the plan found the state already as asked. `write`
 * builds the change's items naming its audit record's eventId (the client's seal names it).
 */
type Plan<T> =
  | {
      write: (auditEventId: string) => Promise<TransactWriteItem[]>;
      /** The record's time: the client's new `updatedAt`, so its seal locates the record (`EVENT#{updatedAt}#{eventId}`). */
      occurredAt?: string;
      audit: AuditEventInput;
      result: T;
    }
  | { write?: never; occurredAt?: never; audit?: never; result: T };

const callerOf = (actor: Actor) => (actor.type === 'client' ? actor : undefined);

export class KeysmithService {
  private readonly db: DynamoDBDocumentClient;
  private readonly store: ClientStore;
  private readonly audit: AuditLog;
  private readonly usage: Pick<UsageReader, 'deleteItem'> | undefined;
  private readonly now: () => number;

  constructor({ documentClient, store, audit, usage, now = Date.now }: KeysmithServiceOptions) {
    this.db = documentClient;
    this.store = store;
    this.audit = audit;
    this.usage = usage;
    this.now = now;
  }

  /**
   * Commits a change and its audit record in one transaction. `plan` reads fresh state each attempt and throws
   * the domain's error when the change is no longer possible; a lost race (a condition or conflict) re-plans.
   */
  private async commit<T>(tenantId: string, plan: () => Promise<Plan<T>>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { write, occurredAt, audit, result } = await plan();
      if (!audit) return result;
      const eventId = newEventId();
      const record = await this.audit.prepare(tenantId, audit, { eventId, ...(occurredAt ? { occurredAt } : {}) });
      const items = await write(eventId);
      try {
        await this.db.send(new TransactWriteCommand({ TransactItems: [...items, record.item] }));
        return result;
      } catch (error) {
        const reasons = cancellationReasons(error);
        const lostRace =
          (error as { name?: string }).name === 'TransactionConflictException' ||
          reasons?.some((code) => code === 'ConditionalCheckFailed' || code === 'TransactionConflict');
        if (!lostRace) throw error;
        if (attempt >= MAX_ATTEMPTS)
          throw new ServiceUnavailableError(
            'too_many_concurrent_changes',
            'Too many concurrent changes to this tenant; nothing was changed. Retry shortly.',
          );
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * Math.min(attempt, 5)));
      }
    }
  }

  /** The `write` of a plan that changes a client's state: seals it naming its audit record, plus `extra` items. */
  private sealed(change: ClientStateChange, extra: TransactWriteItem[] = []) {
    return {
      write: async (auditEventId: string): Promise<TransactWriteItem[]> => {
        change.client.auditEventId = auditEventId;
        return [...(await this.store.writeState(change)), ...extra];
      },
      occurredAt: change.client.updatedAt,
    };
  }

  private nowIso(): string {
    return new Date(this.now()).toISOString();
  }

  /** A client of the tenant, or 404 (another tenant's client looks the same as none). */
  async getClient(tenantId: string, clientId: string): Promise<ServiceClient> {
    const client = await this.store.getClient(clientId);
    if (!client || client.tenantId !== tenantId) throw clientNotFound(clientId);
    return client;
  }

  private async getClientWithKeys(tenantId: string, clientId: string): Promise<ClientWithKeys> {
    const found = await this.store.getClientWithKeys(clientId);
    if (!found || found.client.tenantId !== tenantId) throw clientNotFound(clientId);
    return found;
  }

  listClients(tenantId: string, limit: number, cursor?: string): Promise<Page<ServiceClient>> {
    return this.store.listClients(tenantId, limit, cursor);
  }

  async createClient(actor: Actor, tenantId: string, body: CreateClientBody, meta: RequestMeta = {}): Promise<ServiceClient> {
    // The HTTP layer validates it too; this guards every other caller (bootstrap, the CLI): a dot would break access keys.
    if (!TENANT_ID.test(tenantId)) throw new InvalidRequestError('tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$.');
    const scopes = body.scopes ?? [];
    const caller = callerOf(actor);
    if (caller) assertCanGrant(caller, scopes);
    return this.commit(tenantId, async () => {
      const now = this.nowIso();
      const client: ServiceClient = {
        clientId: newClientId(),
        tenantId,
        name: body.name,
        ...(body.description !== undefined ? { description: body.description } : {}),
        scopes,
        tags: body.tags ?? {},
        enabled: true,
        createdAt: now,
        updatedAt: now,
        version: 1,
        auditEventId: '',
      };
      return {
        ...this.sealed({ client, keys: [], expectedVersion: undefined }),
        audit: {
          action: 'client.created',
          actor,
          target: { clientId: client.clientId },
          details: { name: client.name, description: client.description, scopes, tags: client.tags },
          ...meta,
        },
        result: client,
      };
    });
  }

  async updateClient(
    actor: Actor,
    tenantId: string,
    clientId: string,
    body: UpdateClientBody,
    meta: RequestMeta = {},
  ): Promise<ServiceClient> {
    return this.commit(tenantId, async () => {
      const current = await this.getClientWithKeys(tenantId, clientId);
      const caller = callerOf(actor);
      if (caller) {
        assertCanManage(caller, current.client);
        if (body.scopes) assertCanGrant(caller, body.scopes);
      }
      const next: ServiceClient = { ...current.client, updatedAt: this.nowIso(), version: current.client.version + 1 };
      const changes: Record<string, { from: unknown; to: unknown }> = {};
      for (const field of ['name', 'description', 'scopes', 'tags', 'enabled'] as const) {
        if (body[field] === undefined) continue;
        if (JSON.stringify(current.client[field]) !== JSON.stringify(body[field]))
          changes[field] = { from: current.client[field], to: body[field] };
        Object.assign(next, { [field]: body[field] });
      }
      const guard = await this.lockoutGuard(current, { client: next, keys: current.keys });
      return {
        ...this.sealed({ client: next, keys: current.keys, expectedVersion: current.client.version }, guard),
        audit: { action: 'client.updated', actor, target: { clientId }, details: { changes }, ...meta },
        result: next,
      };
    });
  }

  async deleteClient(actor: Actor, tenantId: string, clientId: string, meta: RequestMeta = {}): Promise<void> {
    let inert: AccessKey[] = [];
    await this.commit(tenantId, async () => {
      const current = await this.getClientWithKeys(tenantId, clientId);
      const { client, keys } = current;
      const caller = callerOf(actor);
      if (caller) assertCanManage(caller, client);
      const guard = await this.lockoutGuard(current, undefined);
      // With at most MAX_STORED_KEYS keys, the client, its keys and the audit record fit one transaction. Should a
      // partition ever hold more, the active keys still go with the client and the inert ones follow it.
      const fits = keys.length <= MAX_TRANSACTION_KEYS - guard.length;
      const now = this.now();
      const inTransaction = fits ? keys : keys.filter((k) => isKeyActive(k, now));
      inert = fits ? [] : keys.filter((k) => !isKeyActive(k, now));
      return {
        write: async () => [
          ...this.store.deleteClient(clientId, client.version),
          ...inTransaction.map((k) => this.store.deleteKey(clientId, k.keyId)),
          ...(this.usage ? [this.usage.deleteItem(clientId)] : []),
          ...guard,
        ],
        audit: {
          action: 'client.deleted',
          actor,
          target: { clientId },
          details: { name: client.name, revokedKeyIds: keys.filter((k) => isKeyActive(k, now)).map((k) => k.keyId) },
          ...meta,
        },
        result: undefined,
      };
    });
    // Revoked or expired keys of a deleted client authorize nothing (nor would they with the client gone): removing
    // them is housekeeping.
    for (let i = 0; i < inert.length; i += 25)
      await this.db.send(
        new BatchWriteCommand({
          RequestItems: {
            [this.store.tableName]: inert
              .slice(i, i + 25)
              .map((k) => ({ DeleteRequest: { Key: tableKeys.accessKey(clientId, k.keyId) } })),
          },
        }),
      );
  }

  /** Generates a key pair (or registers the caller's public key) and adds it to the client. */
  async createKey(
    actor: Actor,
    tenantId: string,
    clientId: string,
    body: CreateKeyBody,
    meta: RequestMeta = {},
  ): Promise<CreatedKey> {
    // Checked before the (possibly slow, RSA) key generation; checked again inside the transaction's plan.
    const before = await this.getClient(tenantId, clientId);
    const caller = callerOf(actor);
    if (caller) assertCanManage(caller, before);
    const material = await keyMaterial(body, 'EdDSA');

    return this.commit(tenantId, async () => {
      const { client, keys } = await this.getClientWithKeys(tenantId, clientId);
      if (caller) assertCanManage(caller, client);
      assertRoomForKey(clientId, keys, this.now());
      const now = this.nowIso();
      const next: ServiceClient = { ...client, updatedAt: now, version: client.version + 1 };
      const key = newKey(clientId, tenantId, material, now, body.expiresAt, next.version);
      return {
        ...this.sealed({ client: next, keys: [...keys, key], expectedVersion: client.version, newKeyIds: [key.keyId] }),
        audit: {
          action: 'access_key.created',
          actor,
          target: { clientId, keyId: key.keyId },
          details: { algorithm: key.algorithm, origin: key.origin, expiresAt: key.expiresAt, publicKey: key.publicKey },
          ...meta,
        },
        result: created(key, material),
      };
    });
  }

  /**
   * Rolls a key (contract §10): a new key, generated or the caller's own, and the old key's expiry brought forward to
   * the end of its grace period (never pushed back), in one transaction with one `access_key.rolled` record. The old
   * key stops counting toward the 5-key limit at once, so a client at the limit can roll. Only an active key that is
   * not already rolling can be rolled: of two concurrent rolls of one key, the second re-reads and is refused.
   */
  async rollKey(
    actor: Actor,
    tenantId: string,
    clientId: string,
    keyId: string,
    body: RollKeyBody,
    meta: RequestMeta = {},
  ): Promise<CreatedKey & { replaced: AccessKey }> {
    const before = await this.getClientWithKeys(tenantId, clientId);
    const caller = callerOf(actor);
    if (caller) assertCanManage(caller, before.client);
    const old = before.keys.find((k) => k.keyId === keyId);
    if (!old) throw keyNotFound(clientId, keyId);
    assertRollable(old, this.now());
    // The new key keeps the old one's algorithm unless told otherwise: whatever verifies the old one takes the new.
    const material = await keyMaterial(body, old.algorithm);
    const graceMs = (body.gracePeriodSeconds ?? ROLL_GRACE_SECONDS.default) * 1000;

    return this.commit(tenantId, async () => {
      const current = await this.getClientWithKeys(tenantId, clientId);
      const { client, keys } = current;
      if (caller) assertCanManage(caller, client);
      const rolled = keys.find((k) => k.keyId === keyId);
      if (!rolled) throw keyNotFound(clientId, keyId);
      const nowMs = this.now();
      assertRollable(rolled, nowMs);
      // The rolled key no longer counts toward the limit of active keys, so the new one always fits there; it stays
      // stored, and joins the keys in a grace period.
      assertRoomForKey(clientId, keys, nowMs, keyId);
      if (keys.filter((k) => keyStatus(k, nowMs) === 'rolling').length >= MAX_ROLLING_KEYS)
        throw new ConflictError(
          'key_limit_reached',
          `Client ${clientId} already has ${MAX_ROLLING_KEYS} keys in a grace period; revoke one of them, or wait for its grace period to end.`,
        );
      const now = new Date(nowMs).toISOString();
      const next: ServiceClient = { ...client, updatedAt: now, version: client.version + 1 };
      const key = newKey(clientId, tenantId, material, now, body.expiresAt, next.version);
      const graceEndsMs = Math.min(nowMs + graceMs, rolled.expiresAt ? Date.parse(rolled.expiresAt) : Number.POSITIVE_INFINITY);
      const graceEndsAt = new Date(graceEndsMs).toISOString();
      const replaced: AccessKey = {
        ...rolled,
        expiresAt: graceEndsAt,
        rolledAt: now,
        replacedBy: key.keyId,
        sealedVersion: next.version,
      };
      const nextKeys = [...keys.map((k) => (k.keyId === keyId ? replaced : k)), key];
      const guard = await this.lockoutGuard(current, { client: next, keys: nextKeys });
      return {
        ...this.sealed({ client: next, keys: nextKeys, expectedVersion: client.version, newKeyIds: [key.keyId] }, guard),
        audit: {
          action: 'access_key.rolled',
          actor,
          target: { clientId, keyId },
          details: {
            newKeyId: key.keyId,
            graceEndsAt,
            algorithm: key.algorithm,
            origin: key.origin,
            expiresAt: key.expiresAt,
            publicKey: key.publicKey,
          },
          ...meta,
        },
        result: { ...created(key, material), replaced },
      };
    });
  }

  async listKeys(tenantId: string, clientId: string, limit: number, cursor?: string): Promise<Page<AccessKey>> {
    return keyPage((await this.getClientWithKeys(tenantId, clientId)).keys, limit, cursor);
  }

  /** Revokes a key; revoking a revoked key changes nothing and succeeds. */
  async revokeKey(actor: Actor, tenantId: string, clientId: string, keyId: string, meta: RequestMeta = {}): Promise<void> {
    await this.commit(tenantId, async () => {
      const current = await this.getClientWithKeys(tenantId, clientId);
      const { client, keys } = current;
      const caller = callerOf(actor);
      if (caller) assertCanManage(caller, client);
      const key = keys.find((k) => k.keyId === keyId);
      if (!key) throw keyNotFound(clientId, keyId);
      if (key.status === 'revoked') return { result: undefined };
      const now = this.nowIso();
      const next: ServiceClient = { ...client, updatedAt: now, version: client.version + 1 };
      const nextKeys = keys.map((k) =>
        k.keyId === keyId ? { ...k, status: 'revoked' as const, revokedAt: now, sealedVersion: next.version } : k,
      );
      const guard = await this.lockoutGuard(current, { client: next, keys: nextKeys });
      return {
        ...this.sealed({ client: next, keys: nextKeys, expectedVersion: client.version }, guard),
        audit: {
          action: 'access_key.revoked',
          actor,
          target: { clientId, keyId },
          details: { algorithm: key.algorithm },
          ...meta,
        },
        result: undefined,
      };
    });
  }

  /**
   * No lock-out (contract §14): a change that takes the last enabled platform admin with an active key out of
   * that role is refused. Otherwise the transaction also checks that the other admin it relies on is unchanged,
   * so two concurrent changes cannot each rely on the other and leave none.
   */
  private async lockoutGuard(before: ClientWithKeys, after: ClientWithKeys | undefined): Promise<TransactWriteItem[]> {
    const now = this.now();
    if (!isEffectivePlatformAdmin(before, now) || (after && isEffectivePlatformAdmin(after, now))) return [];
    for (const clientId of await this.store.listPlatformAdminIds()) {
      if (clientId === before.client.clientId) continue;
      const other = await this.store.getClientWithKeys(clientId);
      if (other && isEffectivePlatformAdmin(other, now)) return [this.store.conditionUnchanged(clientId, other.client.version)];
    }
    throw new ConflictError(
      'last_platform_admin',
      `${before.client.clientId} is the last enabled platform admin with an active key; this change would leave nobody able to manage Keysmith. Make another platform admin first.`,
    );
  }

  /** A client and its keys for the public discovery routes (no tenant check: clientIds are public). */
  async discover(clientId: string): Promise<ClientWithKeys> {
    const found = await this.store.getClientWithKeys(clientId);
    if (!found) throw clientNotFound(clientId);
    return found;
  }
}

export const clientNotFound = (clientId: string) =>
  new NotFoundError('client_not_found', `No service client ${clientId} in this tenant.`);

const keyNotFound = (clientId: string, keyId: string) =>
  new NotFoundError('key_not_found', `Client ${clientId} has no key ${keyId}.`);

/** The public half of a key to add: the caller's own (checked), or a pair generated with `fallback` as the default. */
async function keyMaterial(body: CreateKeyBody, fallback: Algorithm): Promise<KeyMaterial> {
  if (body.publicKey) {
    const { algorithm, publicKey } = importPublicJwk(body.publicKey);
    if (body.algorithm && body.algorithm !== algorithm)
      throw new InvalidRequestError(
        `algorithm ${body.algorithm} does not match the public key (${algorithm}).`,
        'algorithm_mismatch',
      );
    return { algorithm, publicKey };
  }
  const algorithm = body.algorithm ?? fallback;
  return { algorithm, ...(await generateAccessKeyPair(algorithm)) };
}

function newKey(
  clientId: string,
  tenantId: string,
  material: KeyMaterial,
  now: string,
  expiresAt: string | undefined,
  version: number,
): AccessKey {
  return {
    keyId: newKeyId(),
    clientId,
    tenantId,
    algorithm: material.algorithm,
    publicKey: material.publicKey,
    origin: material.privateKeyPkcs8 ? 'generated' : 'registered',
    status: 'active',
    createdAt: now,
    ...(expiresAt ? { expiresAt: new Date(expiresAt).toISOString() } : {}),
    sealedVersion: version,
  };
}

/** The created key, with the access key only when Keysmith generated the pair (shown once, never stored). */
function created(key: AccessKey, material: KeyMaterial): CreatedKey {
  return {
    key,
    ...(material.privateKeyPkcs8
      ? { accessKey: formatAccessKey(key.clientId, key.keyId, key.tenantId, material.privateKeyPkcs8) }
      : {}),
  };
}

/**
 * Refuses a key beyond the limits: stored keys (bounded reads and deletes) and keys counting as active (contract §5),
 * the key being rolled (`rolling`) not among the latter.
 */
function assertRoomForKey(clientId: string, keys: readonly AccessKey[], nowMs: number, rolling?: string): void {
  if (keys.length >= MAX_STORED_KEYS)
    throw new ConflictError(
      'key_limit_reached',
      `Client ${clientId} has ${keys.length} stored keys; revoked and expired keys are removed 30 days later. Create a new client, or wait.`,
    );
  if (keys.filter((k) => k.keyId !== rolling && countsTowardKeyLimit(k, nowMs)).length >= MAX_ACTIVE_KEYS)
    throw new ConflictError(
      'key_limit_reached',
      `Client ${clientId} already has ${MAX_ACTIVE_KEYS} active keys; revoke or roll one before adding another.`,
    );
}

/** Only an active key that is not already in a grace period can be rolled (409 `key_not_active`). */
function assertRollable(key: AccessKey, nowMs: number): void {
  const status = keyStatus(key, nowMs);
  if (status === 'active') return;
  const why = {
    revoked: 'it is revoked',
    expired: 'it has expired',
    rolling: `it was already rolled to ${key.replacedBy}; roll that key instead`,
  }[status];
  throw new ConflictError('key_not_active', `Key ${key.keyId} cannot be rolled: ${why}.`);
}
