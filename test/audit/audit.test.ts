import { createHash } from 'node:crypto';
import {
  DeleteCommand,
  GetCommand,
  NumberValue,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, createAuditCipher, kmsKeyring, localKeyring } from '#shared/audit.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { KeysmithService } from '#shared/service.ts';
import { ClientStore } from '#shared/store.ts';
import { createSealKey, readLocalKey } from '#shared/wiring.ts';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { FAKE_KEY_ARN, type FakeKms, fakeKms } from '../support/kms.ts';
import { assertMatchesOpenApi } from '../support/openapi.ts';

const config = loadConfig();
const db = createDocumentClient();
const system = { type: 'system' as const, name: 'test' };

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const localCipher = () =>
  createAuditCipher({ keyring: localKeyring(readLocalKey(process.env.KEYSMITH_LOCAL_WRAPPING_KEY_FILE as string)) });

/** A service over the test tables with its own audit log (and optionally its own document client). */
function serviceWith(options: { documentClient?: typeof db; audit?: AuditLog } = {}) {
  const documentClient = options.documentClient ?? db;
  const store = new ClientStore({ documentClient, tableName: config.tables.main, sealKey: createSealKey(config) });
  const audit = options.audit ?? new AuditLog({ documentClient, tableName: config.tables.audit, cipher: localCipher() });
  return { store, audit, service: new KeysmithService({ documentClient, store, audit }) };
}

async function auditItems(tenantId: string) {
  const { Items = [] } = await db.send(
    new QueryCommand({
      TableName: config.tables.audit,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
      ExpressionAttributeValues: { ':pk': `TENANT#${tenantId}`, ':e': 'EVENT#' },
    }),
  );
  return Items;
}

describe('every change writes exactly one matching audit record', () => {
  it('for each mutating route, with actor, target, request id and source ip inside the ciphertext', async () => {
    const tenant = newTenant();
    const base = `/v1/tenants/${tenant}/clients`;
    const created = await app.call('POST', base, {
      token: app.adminToken,
      body: { name: 'ledger-sync', description: 'nightly' },
    });
    const clientId = created.body.clientId;
    await app.call('PATCH', `${base}/${clientId}`, { token: app.adminToken, body: { name: 'ledger-sync-2' } });
    const key = await app.createKey(tenant, clientId);
    await app.call('DELETE', `${base}/${clientId}/access-keys/${key.keyId}`, { token: app.adminToken });
    await app.call('DELETE', `${base}/${clientId}`, { token: app.adminToken });
    // Reads and refused changes write nothing.
    await app.call('GET', `${base}/${clientId}`, { token: app.adminToken });
    await app.call('POST', base, { token: app.adminToken, body: { name: '' } });

    const events = await app.call('GET', `/v1/tenants/${tenant}/audit-events`, { token: app.adminToken });
    expect(events.status).toBe(200);
    expect(events.body.items.map((e: { action: string }) => e.action)).toEqual([
      'client.deleted',
      'access_key.revoked',
      'access_key.created',
      'client.updated',
      'client.created',
    ]);
    expect(events.body.items.map((e: { seq: number }) => e.seq)).toEqual([5, 4, 3, 2, 1]);
    const [deleted, revoked, keyCreated, updated, createdEvent] = events.body.items;
    const adminClientId = app.adminAccessKey.split('.')[0];
    for (const event of events.body.items) {
      expect(event.actor).toMatchObject({ type: 'client', clientId: adminClientId });
      expect(event.target.clientId).toBe(clientId);
      expect(event.requestId).toBeTruthy();
      expect(event.sourceIp).toBeTruthy();
      expect(event.tenantId).toBe(tenant);
    }
    expect(createdEvent.details).toMatchObject({ name: 'ledger-sync', description: 'nightly' });
    expect(updated.details.changes).toEqual({ name: { from: 'ledger-sync', to: 'ledger-sync-2' } });
    expect(keyCreated.target.keyId).toBe(key.keyId);
    expect(revoked.target.keyId).toBe(key.keyId);
    expect(deleted.details.name).toBe('ledger-sync-2');
    expect(JSON.stringify(events.body)).not.toContain(key.accessKey.split('.')[3]);
    expect((await auditItems(tenant)).length).toBe(5);
  });

  it('a tenant admin sees a platform admin’s changes as made by "platform_admin", without its ids or source IP', async () => {
    const tenant = newTenant();
    const admin = await app.clientWithToken(tenant, ['keysmith:admin']);
    // One change by the platform admin (the tenant admin's own client), one by the tenant admin.
    await app.call('POST', `/v1/tenants/${tenant}/clients`, { token: admin.token, body: { name: 'by-tenant-admin' } });
    const asTenant = await app.call('GET', `/v1/tenants/${tenant}/audit-events`, { token: admin.token });
    expect(asTenant.status).toBe(200);
    const [own, ...byPlatform] = asTenant.body.items;
    expect(own.actor).toMatchObject({ type: 'client', clientId: admin.clientId, keyId: admin.keyId });
    expect(own.sourceIp).toBeTruthy();
    expect(byPlatform.length).toBe(2);
    for (const event of byPlatform) {
      expect(event.actor).toEqual({ type: 'platform_admin' });
      expect(event.sourceIp).toBeUndefined();
      expect(event.requestId).toBeTruthy();
    }
    expect(JSON.stringify(asTenant.body)).not.toContain(app.adminAccessKey.split('.')[0]);
    const asPlatform = await app.call('GET', `/v1/tenants/${tenant}/audit-events`, { token: app.adminToken });
    expect(asPlatform.body.items[1].actor).toMatchObject({ type: 'client', clientId: app.adminAccessKey.split('.')[0] });
  });

  it('stores only tenant, time, event id and action in plaintext: no names, descriptions or key material', async () => {
    const tenant = newTenant();
    const marker = `needle-${Date.now()}`;
    const client = await app.createClient(tenant, {
      name: `${marker}-name`,
      description: `${marker}-description`,
      tags: { owner: marker },
    });
    const key = await app.createKey(tenant, client.clientId);
    const { Items = [] } = await db.send(new ScanCommand({ TableName: config.tables.audit }));
    const text = JSON.stringify(Items, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
    expect(text).not.toContain(marker);
    expect(text).not.toContain(key.publicKey.x);
    const privatePart = key.accessKey.split('.')[3];
    expect(text).not.toContain(privatePart);
    for (const item of await auditItems(tenant))
      expect(Object.keys(item).sort()).toEqual([
        'action',
        'ciphertext',
        'eventId',
        'occurredAt',
        'pk',
        'seq',
        'sk',
        'tenantId',
        'type',
      ]);
    // The private key is in no table at all.
    const { Items: main = [] } = await db.send(new ScanCommand({ TableName: config.tables.main }));
    expect(JSON.stringify(main)).not.toContain(privatePart);
  });

  it('lists newest first with pagination and from/to and action filters', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const middle = new Date().toISOString();
    for (let i = 0; i < 3; i++) await app.createKey(tenant, client.clientId);
    const path = `/v1/tenants/${tenant}/audit-events`;
    const first = await app.call('GET', `${path}?limit=2`, { token: app.adminToken });
    expect(first.body.items.map((e: { seq: number }) => e.seq)).toEqual([4, 3]);
    const second = await app.call('GET', `${path}?limit=2&cursor=${first.body.nextCursor}`, { token: app.adminToken });
    expect(second.body.items.map((e: { seq: number }) => e.seq)).toEqual([2, 1]);
    expect(second.body.nextCursor).toBeUndefined();
    const since = await app.call('GET', `${path}?from=${middle}`, { token: app.adminToken });
    expect(since.body.items.every((e: { action: string }) => e.action === 'access_key.created')).toBe(true);
    expect(since.body.items).toHaveLength(3);
    const until = await app.call('GET', `${path}?to=${middle}`, { token: app.adminToken });
    expect(until.body.items.map((e: { action: string }) => e.action)).toEqual(['client.created']);
    const byAction = await app.call('GET', `${path}?action=client.created&limit=1`, { token: app.adminToken });
    expect(byAction.body.items).toHaveLength(1);
    expect(byAction.body.items[0].seq).toBe(1);
  });

  it('sets a DynamoDB TTL on records when retention is configured', async () => {
    const tenant = newTenant();
    const retained = new AuditLog({
      documentClient: db,
      tableName: config.tables.audit,
      cipher: localCipher(),
      retentionDays: 30,
    });
    await serviceWith({ audit: retained }).service.createClient(system, tenant, { name: 'x' });
    const [item] = await auditItems(tenant);
    const expected = Math.floor(Date.now() / 1000) + 30 * 86_400;
    expect(Math.abs((item?.expiresAtEpoch as number) - expected)).toBeLessThan(60);
  });
});

describe('atomic with the change', () => {
  /** A document client whose transactions are rewritten by `rewrite` before they are sent. */
  function rewritingClient(rewrite: (items: any[]) => void) {
    const client = createDocumentClient();
    const send = client.send.bind(client);
    (client as any).send = (command: any) => {
      if (command instanceof TransactWriteCommand) rewrite(command.input.TransactItems as any[]);
      return send(command);
    };
    return client;
  }

  it('a failing audit record cancels the change: neither exists', async () => {
    const tenant = newTenant();
    const documentClient = rewritingClient((items) => {
      const record = items.find((i) => i.Put?.Item?.type === 'auditEvent');
      record.Put.ConditionExpression = 'attribute_exists(pk)'; // can never hold for a new record
    });
    const { service } = serviceWith({ documentClient });
    await expect(service.createClient(system, tenant, { name: 'doomed' })).rejects.toMatchObject({ status: 503 });
    expect((await app.call('GET', `/v1/tenants/${tenant}/clients`, { token: app.adminToken })).body.items).toEqual([]);
    expect(await auditItems(tenant)).toEqual([]);
  });

  it('a failing change cancels its audit record: neither exists', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const before = (await auditItems(tenant)).length;
    const documentClient = rewritingClient((items) => {
      const key = items.find((i) => i.Put?.Item?.type === 'accessKey');
      key.Put.Item.keyId = { not: 'a string' };
      key.Put.TableName = 'no-such-table';
    });
    const { service } = serviceWith({ documentClient });
    await expect(service.createKey(system, tenant, client.clientId, {})).rejects.toThrow();
    expect((await auditItems(tenant)).length).toBe(before);
    const keys = await app.call('GET', `/v1/tenants/${tenant}/clients/${client.clientId}/access-keys`, { token: app.adminToken });
    expect(keys.body.items).toEqual([]);
  });

  it('a DynamoDB throttle on the transaction writes nothing and is a 503 to the caller', async () => {
    const tenant = newTenant();
    const documentClient = createDocumentClient({ maxAttempts: 1 });
    const send = documentClient.send.bind(documentClient);
    (documentClient as any).send = (command: any) => {
      if (command instanceof TransactWriteCommand)
        return Promise.reject(
          Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $retryable: { throttling: true } }),
        );
      return send(command);
    };
    const { service } = serviceWith({ documentClient });
    const { handleApiRequest } = await import('#shared/api.ts');
    const { ROUTES } = await import('#shared/routes.ts');
    const response = await handleApiRequest(
      {
        route: ROUTES.find((r) => r.id === 'createClient')!,
        pathParameters: { tenantId: tenant },
        query: {},
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'throttled' }),
        caller: { clientId: 'sc_0000000000000000000000', tenantId: tenant, keyId: 'k0000000', scopes: ['keysmith:admin'] },
      },
      { config, service },
    );
    expect(response.statusCode).toBe(503);
    expect(JSON.parse(response.body).code).toBe('store_unavailable');
    // Called without HTTP, the answer is still held to the document.
    assertMatchesOpenApi(
      'POST',
      `/v1/tenants/${tenant}/clients`,
      503,
      response.headers['content-type'],
      JSON.parse(response.body),
    );
    expect(await auditItems(tenant)).toEqual([]);
  });
});

describe('KMS (through the Encryption SDK’s KMS keyring)', () => {
  let kms: FakeKms;
  afterEach(() => kms.restore());

  const kmsAudit = (cacheDisabled = false) =>
    new AuditLog({
      documentClient: db,
      tableName: config.tables.audit,
      cipher: createAuditCipher({ keyring: kmsKeyring(FAKE_KEY_ARN, kms.kms), disableCache: cacheDisabled }),
    });

  it('encrypts under a per-tenant encryption context and reuses cached data keys', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    const { service } = serviceWith({ audit: kmsAudit() });
    for (let i = 0; i < 10; i++) await service.createClient(system, tenant, { name: `c${i}` });
    expect(kms.calls.generateDataKey).toBe(1);
    expect(kms.contexts[0]).toEqual({ purpose: 'keysmith-audit', tenant });
    const listed = await kmsAudit().list(tenant, { limit: 20 });
    expect(listed.items).toHaveLength(10);
    expect(listed.items.every((e) => !('integrity' in e))).toBe(true);
    expect((await kmsAudit().verify(tenant)).ok).toBe(true);
  });

  it('KMS down while reading: listing is 503 audit_unavailable and verify fails, neither claims tampering', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'x' });
    kms.down = true;
    const reader = kmsAudit(true);
    await expect(reader.list(tenant, { limit: 20 })).rejects.toMatchObject({ status: 503, code: 'audit_unavailable' });
    await expect(reader.verify(tenant)).rejects.toMatchObject({ code: 'audit_unavailable' });
    kms.down = false;
    expect((await reader.verify(tenant)).ok).toBe(true);
  });

  it('KMS down: the change is refused with 503 audit_unavailable and nothing is written', async () => {
    kms = fakeKms();
    kms.down = true;
    const tenant = newTenant();
    const { service } = serviceWith({ audit: kmsAudit(true) });
    await expect(service.createClient(system, tenant, { name: 'x' })).rejects.toMatchObject({
      status: 503,
      code: 'audit_unavailable',
    });
    expect(await auditItems(tenant)).toEqual([]);
    expect((await app.call('GET', `/v1/tenants/${tenant}/clients`, { token: app.adminToken })).body.items).toEqual([]);
  });

  it('a record whose data key KMS refuses (encrypted elsewhere) is reported as changed, not as KMS unavailable', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'x' });
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'y' });
    // The same tenant's record made by another deployment's KMS key: authentic nowhere here.
    const [first] = await auditItems(tenant);
    kms.restore();
    kms = fakeKms();
    const elsewhere = await createAuditCipher({ keyring: kmsKeyring(FAKE_KEY_ARN, kms.kms) }).encrypt(tenant, Buffer.from('{}'));
    kms.restore();
    kms = fakeKms();
    await db.send(new PutCommand({ TableName: config.tables.audit, Item: { ...first!, ciphertext: elsewhere } }));
    const listed = await kmsAudit(true).list(tenant, { limit: 20 });
    expect(listed.items.find((e) => e.seq === 1)).toMatchObject({ integrity: 'failed' });
    expect((await kmsAudit(true).verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 1 });
  });

  it('KMS refusing the role is reported as access denied with its action, not as KMS unavailable', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'x' });
    kms.denied = true;
    const denied = { status: 500, code: 'dependency_access_denied' };
    await expect(
      serviceWith({ audit: kmsAudit(true) }).service.createClient(system, newTenant(), { name: 'y' }),
    ).rejects.toMatchObject({ ...denied, action: 'kms:GenerateDataKey' });
    await expect(kmsAudit(true).list(tenant, { limit: 20 })).rejects.toMatchObject({ ...denied, action: 'kms:Decrypt' });
    expect(await auditItems(tenant)).toHaveLength(1);
  });
});

describe('tamper evidence (audit verify)', () => {
  const { audit, service } = serviceWith();

  /** A tenant with a chain of `n` records. */
  async function chain(n: number): Promise<{ tenant: string; items: Record<string, any>[] }> {
    const tenant = newTenant();
    for (let i = 0; i < n; i++) await service.createClient(system, tenant, { name: `c${i}` });
    const items = await auditItems(tenant);
    expect(items).toHaveLength(n);
    return { tenant, items };
  }

  /** Sets the head's plaintext to name `record`: everything in it is computable from the table (seq, time, SHA-256). */
  async function rewriteHeadTo(tenant: string, record: Record<string, any>): Promise<void> {
    await db.send(
      new UpdateCommand({
        TableName: config.tables.audit,
        Key: { pk: `TENANT#${tenant}`, sk: 'HEAD' },
        UpdateExpression: 'SET seq = :seq, digest = :digest, occurredAt = :at',
        ExpressionAttributeValues: {
          ':seq': record.seq,
          ':digest': createHash('sha256').update(record.ciphertext).digest('base64url'),
          ':at': record.occurredAt,
        },
      }),
    );
  }

  /** An audit log whose first Query of the audit table is followed, before it returns, by `change` committing. */
  function racingAudit(change: () => Promise<unknown>) {
    let raced = false;
    const racing = Object.create(db) as typeof db;
    racing.send = (async (command: unknown, ...rest: unknown[]) => {
      const out = await (db.send as (...args: unknown[]) => Promise<unknown>)(command, ...rest);
      if (!raced && command instanceof QueryCommand && command.input.TableName === config.tables.audit) {
        raced = true;
        await change();
      }
      return out;
    }) as typeof db.send;
    const log = new AuditLog({ documentClient: racing, tableName: config.tables.audit, cipher: localCipher() });
    return { log, raced: () => raced };
  }

  it('an untouched chain verifies', async () => {
    const { tenant } = await chain(5);
    expect(await audit.verify(tenant)).toMatchObject({ ok: true, records: 5, firstSeq: 1, lastSeq: 5 });
  });

  it('detects an edited ciphertext and an edited plaintext field', async () => {
    const { tenant, items } = await chain(5);
    const edited = Buffer.from(items[2]!.ciphertext);
    const at = edited.length - 40;
    edited.writeUInt8(edited.readUInt8(at) ^ 1, at);
    await db.send(new PutCommand({ TableName: config.tables.audit, Item: { ...items[2], ciphertext: edited } }));
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 3 });

    const other = await chain(4);
    await db.send(
      new UpdateCommand({
        TableName: config.tables.audit,
        Key: { pk: other.items[1]!.pk, sk: other.items[1]!.sk },
        UpdateExpression: 'SET #a = :a',
        ExpressionAttributeNames: { '#a': 'action' },
        ExpressionAttributeValues: { ':a': 'client.deleted' },
      }),
    );
    expect((await audit.verify(other.tenant)).problem).toMatchObject({ kind: 'changed', seq: 2 });
  });

  it('detects a deleted record', async () => {
    const { tenant, items } = await chain(5);
    await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: items[1]!.pk, sk: items[1]!.sk } }));
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'deleted', seq: 2 });
  });

  it('detects swapped (reordered) records', async () => {
    const { tenant, items } = await chain(5);
    const [a, b] = [items[1]!, items[2]!];
    await db.send(
      new PutCommand({ TableName: config.tables.audit, Item: { ...a, ciphertext: b.ciphertext, eventId: b.eventId } }),
    );
    await db.send(
      new PutCommand({ TableName: config.tables.audit, Item: { ...b, ciphertext: a.ciphertext, eventId: a.eventId } }),
    );
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'reordered', seq: 2 });
  });

  it('detects an inserted copy of a record', async () => {
    const { tenant, items } = await chain(3);
    // A copy of record 1 placed between records 1 and 2 (its sort key sorts right after record 1's).
    const copy = { ...items[0]!, sk: `${items[0]!.sk.slice(0, -1)}5` };
    await db.send(new PutCommand({ TableName: config.tables.audit, Item: copy }));
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'inserted' });
  });

  it('detects a record moved in from another tenant', async () => {
    const { tenant, items } = await chain(2);
    const other = await chain(2);
    await db.send(
      new PutCommand({ TableName: config.tables.audit, Item: { ...items[1]!, ciphertext: other.items[1]!.ciphertext } }),
    );
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 2 });
  });

  it('detects a truncated tail', async () => {
    const { tenant, items } = await chain(4);
    await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: items[3]!.pk, sk: items[3]!.sk } }));
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'truncated', seq: 4 });
  });

  it('detects a cut tail even when the head is rewritten to match the new last record', async () => {
    const { tenant, items } = await chain(4);
    const last = items[3]!;
    const newLast = items[2]!;
    await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: last.pk, sk: last.sk } }));
    await rewriteHeadTo(tenant, newLast);
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'head_changed', seq: 3 });
  });

  it('a cut tail with the head rewritten is still reported after the next legitimate change, which is refused', async () => {
    const { tenant, items } = await chain(5);
    for (const cut of items.slice(3))
      await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: cut.pk, sk: cut.sk } }));
    const kept = items[2]!;
    await rewriteHeadTo(tenant, kept);
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'head_changed', seq: 3 });
    // The change that used to heal the chain (building record 4 on the forged head) is refused, over HTTP too.
    const reports: unknown[] = [];
    const watched = new AuditLog({
      documentClient: db,
      tableName: config.tables.audit,
      cipher: localCipher(),
      onTamper: (r) => reports.push(r),
    });
    await expect(serviceWith({ audit: watched }).service.createClient(system, tenant, { name: 'after' })).rejects.toMatchObject({
      status: 500,
      code: 'audit_chain_tampered',
    });
    expect(reports).toEqual([{ reason: 'audit_head_invalid', tenantId: tenant }]);
    const http = await app.call('POST', `/v1/tenants/${tenant}/clients`, { token: app.adminToken, body: { name: 'after' } });
    expect(http.status).toBe(500);
    expect(http.body.code).toBe('audit_chain_tampered');
    expect(await auditItems(tenant)).toHaveLength(3);
    expect((await app.call('GET', `/v1/tenants/${tenant}/clients`, { token: app.adminToken })).body.items).toHaveLength(5);
    expect((await audit.verify(tenant)).ok).toBe(false);
  });

  it('a head time set to 2099 is not stamped on later records: the change is refused and verify reports it', async () => {
    const { tenant } = await chain(2);
    await db.send(
      new UpdateCommand({
        TableName: config.tables.audit,
        Key: { pk: `TENANT#${tenant}`, sk: 'HEAD' },
        UpdateExpression: 'SET occurredAt = :at',
        ExpressionAttributeValues: { ':at': '2099-01-01T00:00:00.000Z' },
      }),
    );
    await expect(service.createClient(system, tenant, { name: 'later' })).rejects.toMatchObject({ code: 'audit_chain_tampered' });
    const items = await auditItems(tenant);
    expect(items).toHaveLength(2);
    expect(items.some((item) => String(item.occurredAt).startsWith('2099'))).toBe(false);
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'head_changed' });
  });

  it('a deleted head with records left is not a fresh start: the change is refused', async () => {
    const { tenant } = await chain(2);
    await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: `TENANT#${tenant}`, sk: 'HEAD' } }));
    await expect(service.createClient(system, tenant, { name: 'later' })).rejects.toMatchObject({ code: 'audit_chain_tampered' });
    expect(await auditItems(tenant)).toHaveLength(2);
    expect((await audit.verify(tenant)).problem).toMatchObject({ kind: 'head_missing' });
  });

  it('a saved old head written back after cutting the records since: caught only by a head kept elsewhere', async () => {
    const { tenant } = await chain(3);
    const headKey = { pk: `TENANT#${tenant}`, sk: 'HEAD' };
    const { Item: oldHead } = await db.send(new GetCommand({ TableName: config.tables.audit, Key: headKey }));
    await service.createClient(system, tenant, { name: 'four' });
    await service.createClient(system, tenant, { name: 'five' });
    const kept = (await audit.verify(tenant)).head!;
    expect(kept.seq).toBe(5);
    const items = await auditItems(tenant);
    for (const cut of items.slice(3))
      await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: cut.pk, sk: cut.sk } }));
    await db.send(new PutCommand({ TableName: config.tables.audit, Item: oldHead! }));
    // Consistent inside the table: undetectable without the copy (README: what it does not catch).
    expect((await audit.verify(tenant)).ok).toBe(true);
    expect((await audit.verify(tenant, { expectHead: kept })).problem).toMatchObject({ kind: 'rolled_back', seq: 3 });
    // Later changes write a different record 4 and 5: the copy still tells.
    await service.createClient(system, tenant, { name: 'four again' });
    await service.createClient(system, tenant, { name: 'five again' });
    await service.createClient(system, tenant, { name: 'six' });
    expect((await audit.verify(tenant)).ok).toBe(true);
    expect((await audit.verify(tenant, { expectHead: kept })).problem).toMatchObject({ kind: 'rolled_back', seq: 5 });
    const fresh = (await audit.verify(tenant)).head!;
    expect((await audit.verify(tenant, { expectHead: fresh })).ok).toBe(true);
  });

  it('a cut tail with an older head written back is caught by the clients’ seals, which name their last change', async () => {
    const { store } = serviceWith();
    const tenant = newTenant();
    const first = await service.createClient(system, tenant, { name: 'one' });
    const headKey = { pk: `TENANT#${tenant}`, sk: 'HEAD' };
    const { Item: oldHead } = await db.send(new GetCommand({ TableName: config.tables.audit, Key: headKey }));
    const second = await service.createClient(system, tenant, { name: 'two' });
    await service.updateClient(system, tenant, first.clientId, { name: 'one again' });
    const clients = async () => ({
      listed: (await store.listClients(tenant, 100)).items.map((c) => c.clientId),
      inspect: (clientId: string) => store.inspectClient(clientId),
    });
    expect(await audit.verify(tenant, { clients: await clients() })).toMatchObject({ ok: true, clientsChecked: 2 });

    const items = await auditItems(tenant);
    for (const cut of items.slice(1))
      await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: cut.pk, sk: cut.sk } }));
    await db.send(new PutCommand({ TableName: config.tables.audit, Item: oldHead! }));
    expect((await audit.verify(tenant)).ok, 'consistent inside the audit table alone').toBe(true);
    expect((await audit.verify(tenant, { clients: await clients() })).problem).toMatchObject({ kind: 'rolled_back' });
    // Also after a later legitimate change on top of the rolled-back chain.
    await service.createClient(system, tenant, { name: 'three' });
    const report = await audit.verify(tenant, { clients: await clients() });
    expect(report.problem).toMatchObject({ kind: 'rolled_back' });
    expect(report.problem?.detail).toMatch(new RegExp(`${first.clientId}|${second.clientId}`));
  });

  it('the cross-check reads each client by id: a client hidden from the index, or written back alone, is reported', async () => {
    const { store } = serviceWith();
    const clients = (tenant: string) => async () => ({
      listed: (await store.listClients(tenant, 100)).items.map((c) => c.clientId),
      inspect: (clientId: string) => store.inspectClient(clientId),
    });
    for (const attack of ['remove gsi1pk', 'write back the client item'] as const) {
      const tenant = newTenant();
      const created = await service.createClient(system, tenant, { name: 'a', scopes: ['x:admin'] });
      const headKey = { pk: `TENANT#${tenant}`, sk: 'HEAD' };
      const { Item: oldHead } = await db.send(new GetCommand({ TableName: config.tables.audit, Key: headKey }));
      const clientKey = { pk: `CLIENT#${created.clientId}`, sk: 'CLIENT' };
      const { Item: oldClient } = await db.send(new GetCommand({ TableName: config.tables.main, Key: clientKey }));
      await service.updateClient(system, tenant, created.clientId, { enabled: false, scopes: [] });
      const items = await auditItems(tenant);
      await db.send(new DeleteCommand({ TableName: config.tables.audit, Key: { pk: items[1]!.pk, sk: items[1]!.sk } }));
      await db.send(new PutCommand({ TableName: config.tables.audit, Item: oldHead! }));
      if (attack === 'remove gsi1pk')
        await db.send(new UpdateCommand({ TableName: config.tables.main, Key: clientKey, UpdateExpression: 'REMOVE gsi1pk' }));
      else await db.send(new PutCommand({ TableName: config.tables.main, Item: oldClient! }));
      expect((await audit.verify(tenant)).ok, attack).toBe(true);
      const report = await audit.verify(tenant, { clients: await clients(tenant)() });
      expect(report.ok, attack).toBe(false);
      expect(report.problem?.detail, attack).toContain(created.clientId);
    }
  });

  it('a change committed while verify walks the chain is walked too, not reported as tampering', async () => {
    const { tenant } = await chain(3);
    const during = racingAudit(() => service.createClient(system, tenant, { name: 'racer' }));
    expect(await during.log.verify(tenant)).toMatchObject({ ok: true, records: 4, head: { seq: 4 } });
    expect(during.raced()).toBe(true);
  });

  it('the first change of a tenant committed while verify walks its empty chain is walked too', async () => {
    const tenant = newTenant();
    const during = racingAudit(() => service.createClient(system, tenant, { name: 'first' }));
    expect(await during.log.verify(tenant)).toMatchObject({ ok: true, records: 1, head: { seq: 1 } });
    expect(during.raced()).toBe(true);
  });

  it('a number that only rounds to the expected one (2.00000000000000000001) is refused, not retried into a 503', async () => {
    const tenant = newTenant();
    const created = await service.createClient(system, tenant, { name: 'a' });
    await db.send(
      new UpdateCommand({
        TableName: config.tables.main,
        Key: { pk: `CLIENT#${created.clientId}`, sk: 'CLIENT' },
        UpdateExpression: 'SET version = :v',
        ExpressionAttributeValues: { ':v': NumberValue.from('1.00000000000000000001') },
      }),
    );
    await expect(service.updateClient(system, tenant, created.clientId, { name: 'b' })).rejects.toMatchObject({
      status: 404,
      code: 'client_not_found',
    });
    await db.send(
      new UpdateCommand({
        TableName: config.tables.audit,
        Key: { pk: `TENANT#${tenant}`, sk: 'HEAD' },
        UpdateExpression: 'SET seq = :v',
        ExpressionAttributeValues: { ':v': NumberValue.from('1.0000000000000000000001') },
      }),
    );
    await expect(service.createClient(system, tenant, { name: 'c' })).rejects.toMatchObject({ code: 'audit_chain_tampered' });
  });

  it('verify reports the head (seq and digest of the newest record), so a copy kept elsewhere can detect a rollback', async () => {
    const { tenant, items } = await chain(3);
    const report = await audit.verify(tenant);
    expect(report.head).toEqual({
      seq: 3,
      digest: createHash('sha256').update(items[2]!.ciphertext).digest('base64url'),
      occurredAt: items[2]!.occurredAt,
    });
  });

  it('concurrent changes in one tenant still form one unbroken chain', async () => {
    const tenant = newTenant();
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => service.createClient(system, tenant, { name: `c${i}` })),
    );
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    const report = await audit.verify(tenant);
    expect(report).toMatchObject({ ok: true, records: 12, firstSeq: 1, lastSeq: 12 });
    const clients = await app.call('GET', `/v1/tenants/${tenant}/clients?limit=100`, { token: app.adminToken });
    expect(clients.body.items).toHaveLength(12);
  });
});
