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
  isEffectivePlatformAdmin,
  isKeyActive,
  type PublicJwk,
  type ServiceClient,
} from './model.ts';
import type { CreateClientBody, CreateKeyBody, UpdateClientBody } from './schemas.ts';
import { type ClientStateChange, type ClientStore, keyPage, type Page } from './store.ts';
import { keys as tableKeys } from './tables.ts';

/** At most this many active keys per client (contract §5). */
export const MAX_ACTIVE_KEYS = 5;
/**
 * Keys a client may have stored at once (active, expired, or revoked and not yet removed by DynamoDB TTL, 30 days
 * after revocation or expiry). It bounds the authorizer's read, and lets a client be deleted with all its keys and
 * the audit record in one transaction (TransactWriteItems holds at most 100 items).
 */
export const MAX_STORED_KEYS = 90;
/** Keys that fit one TransactWriteItems (100 items) beside the client item, its state witness and the audit record. */
const MAX_TRANSACTION_KEYS = 96;
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
  /** The clock. @default Date.now */
  now?: () => number;
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
  private readonly now: () => number;

  constructor({ documentClient, store, audit, now = Date.now }: KeysmithServiceOptions) {
    this.db = documentClient;
    this.store = store;
    this.audit = audit;
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

    let algorithm: Algorithm;
    let publicKey: PublicJwk;
    let privateKeyPkcs8: string | undefined;
    if (body.publicKey) {
      ({ algorithm, publicKey } = importPublicJwk(body.publicKey));
      if (body.algorithm && body.algorithm !== algorithm)
        throw new InvalidRequestError(
          `algorithm ${body.algorithm} does not match the public key (${algorithm}).`,
          'algorithm_mismatch',
        );
    } else {
      algorithm = body.algorithm ?? 'EdDSA';
      ({ publicKey, privateKeyPkcs8 } = await generateAccessKeyPair(algorithm));
    }

    return this.commit(tenantId, async () => {
      const { client, keys } = await this.getClientWithKeys(tenantId, clientId);
      if (caller) assertCanManage(caller, client);
      if (keys.length >= MAX_STORED_KEYS)
        throw new ConflictError(
          'key_limit_reached',
          `Client ${clientId} has ${keys.length} stored keys; revoked and expired keys are removed 30 days later. Create a new client, or wait.`,
        );
      const active = keys.filter((k) => isKeyActive(k, this.now())).length;
      if (active >= MAX_ACTIVE_KEYS)
        throw new ConflictError(
          'key_limit_reached',
          `Client ${clientId} already has ${MAX_ACTIVE_KEYS} active keys; revoke one before adding another.`,
        );
      const now = this.nowIso();
      const next: ServiceClient = { ...client, updatedAt: now, version: client.version + 1 };
      const key: AccessKey = {
        keyId: newKeyId(),
        clientId,
        tenantId,
        algorithm,
        publicKey,
        origin: privateKeyPkcs8 ? 'generated' : 'registered',
        status: 'active',
        createdAt: now,
        ...(body.expiresAt ? { expiresAt: new Date(body.expiresAt).toISOString() } : {}),
        sealedVersion: next.version,
      };
      return {
        ...this.sealed({ client: next, keys: [...keys, key], expectedVersion: client.version, newKeyIds: [key.keyId] }),
        audit: {
          action: 'access_key.created',
          actor,
          target: { clientId, keyId: key.keyId },
          details: { algorithm, origin: key.origin, expiresAt: key.expiresAt, publicKey },
          ...meta,
        },
        result: {
          key,
          ...(privateKeyPkcs8 ? { accessKey: formatAccessKey(clientId, key.keyId, tenantId, privateKeyPkcs8) } : {}),
        },
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
      if (!key) throw new NotFoundError('key_not_found', `Client ${clientId} has no key ${keyId}.`);
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
