import { GetCommand, PutCommand, QueryCommand, ScanCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuditLinker } from '#shared/audit/chain.ts';
import type { ChangeEvent } from '#shared/audit/events.ts';
import { AuditLog, createAuditCipher, kmsKeyring } from '#shared/audit/log.ts';
import { AuditVerifier } from '#shared/audit/verify.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { randomBase62 } from '#shared/ids.ts';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { createOwnAuditTable, memoryAnchorQueue, SYSTEM, testService, waitLinked } from '../support/audit.ts';
import { FAKE_KEY_ARN, type FakeKms, fakeKms } from '../support/kms.ts';
import { assertMatchesOpenApi } from '../support/openapi.ts';

const config = loadConfig();
const db = createDocumentClient();
const system = SYSTEM;

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const serviceWith = testService;

async function auditItems(tenantId: string, tableName = config.tables.audit) {
  const { Items = [] } = await db.send(
    new QueryCommand({
      TableName: tableName,
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

    await waitLinked(tenant, { records: 5 });
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
    await waitLinked(tenant, { records: 2 });
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
        'link',
        'linkSeal',
        'linkedAt',
        'occurredAt',
        'pk',
        'prevLink',
        'seq',
        'sk',
        'tenantId',
        'type',
      ]);
    // The chain head: positions and its seal, nothing about the change.
    const { Item: head } = await db.send(
      new GetCommand({ TableName: config.tables.audit, Key: { pk: `TENANT#${tenant}`, sk: 'HEAD' } }),
    );
    expect(Object.keys(head ?? {}).sort()).toEqual([
      'eventId',
      'link',
      'linkedAt',
      'pk',
      'seal',
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
    await waitLinked(tenant, { records: 4 });
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
      cipher: testService().audit.cipher,
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
  // Records under the fake KMS key live in a table of their own: the run's audit function (local key) would refuse them.
  const kmsTable = `keysmith-test-audit-kms-${randomBase62(6).toLowerCase()}`;
  beforeAll(() => createOwnAuditTable(kmsTable));
  let kms: FakeKms;
  afterEach(() => kms.restore());

  const kmsCipher = (cacheDisabled = false) =>
    createAuditCipher({ keyring: kmsKeyring(FAKE_KEY_ARN, kms.kms), disableCache: cacheDisabled });
  const kmsAudit = (cacheDisabled = false) =>
    new AuditLog({ documentClient: db, tableName: kmsTable, cipher: kmsCipher(cacheDisabled) });
  const kmsVerifier = (cacheDisabled = false) =>
    new AuditVerifier({ documentClient: db, tableName: kmsTable, cipher: kmsCipher(cacheDisabled) });
  /** Links the tenant's records as the audit function would, with the KMS cipher. */
  async function link(tenant: string, cacheDisabled = false): Promise<ChangeEvent[]> {
    const published: ChangeEvent[] = [];
    const linker = new AuditLinker({
      anchorQueue: memoryAnchorQueue(),
      documentClient: db,
      tableName: kmsTable,
      cipher: kmsCipher(cacheDisabled),
      events: { publish: async (events) => void published.push(...events) },
      onTamper: () => {},
    });
    const records = await auditItems(tenant, kmsTable);
    await linker.link(records.map((item) => ({ pk: item.pk, sk: item.sk })));
    return published;
  }

  it('encrypts under a per-tenant encryption context and reuses cached data keys, linking included', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    const { service } = serviceWith({ audit: kmsAudit() });
    for (let i = 0; i < 10; i++) await service.createClient(system, tenant, { name: `c${i}` });
    expect(kms.calls.generateDataKey).toBe(1);
    expect(kms.contexts[0]).toEqual({ purpose: 'keysmith-audit', tenant });
    const before = { ...kms.calls };
    expect((await link(tenant)).map((event) => event.detail.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // One linker, cold: a data key for the head's seal and one decrypt of the records' (cached) data key.
    expect(kms.calls.generateDataKey - before.generateDataKey).toBeLessThanOrEqual(1);
    expect(kms.calls.decrypt - before.decrypt).toBeLessThanOrEqual(1);
    const listed = await kmsAudit().list(tenant, { limit: 20 });
    expect(listed.items).toHaveLength(10);
    expect(listed.items.every((e) => !('integrity' in e))).toBe(true);
    expect(await kmsVerifier().verify(tenant)).toMatchObject({ ok: true, records: 10 });
  });

  it('KMS down while reading: listing is 503 audit_unavailable and verify fails, neither claims tampering', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'x' });
    await link(tenant);
    kms.down = true;
    await expect(kmsAudit(true).list(tenant, { limit: 20 })).rejects.toMatchObject({ status: 503, code: 'audit_unavailable' });
    await expect(kmsVerifier(true).verify(tenant)).rejects.toMatchObject({ code: 'audit_unavailable' });
    kms.down = false;
    expect((await kmsVerifier(true).verify(tenant)).ok).toBe(true);
  });

  it('KMS down while linking: nothing is linked and the batch can be delivered again', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'x' });
    kms.down = true;
    await expect(link(tenant, true)).rejects.toMatchObject({ code: 'audit_unavailable' });
    expect((await auditItems(tenant, kmsTable)).every((item) => item.seq === undefined)).toBe(true);
    kms.down = false;
    expect(await link(tenant, true)).toHaveLength(1);
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
    expect(await auditItems(tenant, kmsTable)).toEqual([]);
    expect((await app.call('GET', `/v1/tenants/${tenant}/clients`, { token: app.adminToken })).body.items).toEqual([]);
  });

  it('a record whose data key KMS refuses (encrypted elsewhere) is reported as changed, not as KMS unavailable', async () => {
    kms = fakeKms();
    const tenant = newTenant();
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'x' });
    await serviceWith({ audit: kmsAudit() }).service.createClient(system, tenant, { name: 'y' });
    await link(tenant);
    // The same tenant's record made by another deployment's KMS key: authentic nowhere here.
    const first = (await auditItems(tenant, kmsTable)).find((item) => item.seq === 1);
    kms.restore();
    kms = fakeKms();
    const elsewhere = await createAuditCipher({ keyring: kmsKeyring(FAKE_KEY_ARN, kms.kms) }).encrypt(tenant, Buffer.from('{}'));
    kms.restore();
    kms = fakeKms();
    await db.send(new PutCommand({ TableName: kmsTable, Item: { ...first!, ciphertext: elsewhere } }));
    const listed = await kmsAudit(true).list(tenant, { limit: 20 });
    expect(listed.items.find((e) => e.seq === 1)).toMatchObject({ integrity: 'failed' });
    expect((await kmsVerifier(true).verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 1 });
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
    expect(await auditItems(tenant, kmsTable)).toHaveLength(1);
  });
});
