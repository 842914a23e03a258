/** Rolling a key (contract §10): a new key, the old one in its grace period, then stopped like an expired key. */
import { generateKeyPairSync } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { newTenant, ownKeyToken, type TestApp, useTestApp, waitSeconds } from '../support/app.ts';
import { auditRecords } from '../support/audit.ts';

process.env.KEYSMITH_REVOCATION_SECONDS = '1';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const keysPath = (tenant: string, clientId: string) => `/v1/tenants/${tenant}/clients/${clientId}/access-keys`;
const rollPath = (tenant: string, clientId: string, keyId: string) => `${keysPath(tenant, clientId)}/${keyId}/roll`;

async function listKeys(tenant: string, clientId: string): Promise<Record<string, any>[]> {
  const list = await app.call('GET', keysPath(tenant, clientId), { token: app.adminToken });
  expect(list.status).toBe(200);
  return list.body.items;
}

const whoami = async (token: string) => (await app.call('GET', '/v1/whoami', { token })).status;

describe('rolling a key', () => {
  it('answers like key creation, marks the old key rolling until the grace ends, and records one audit event', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const old = await app.createKey(tenant, client.clientId, { algorithm: 'ES256' });
    const before = Date.now();
    const rolled = await app.call('POST', rollPath(tenant, client.clientId, old.keyId), {
      token: app.adminToken,
      body: { gracePeriodSeconds: 3600 },
    });
    expect(rolled.status).toBe(201);
    // The old key's algorithm by default; a generated key's access key, once.
    expect(rolled.body).toMatchObject({ algorithm: 'ES256', origin: 'generated', status: 'active', clientId: client.clientId });
    expect(rolled.body.accessKey.split('.').slice(0, 3)).toEqual([client.clientId, rolled.body.keyId, tenant]);
    expect(rolled.body.keyId).not.toBe(old.keyId);

    const keys = await listKeys(tenant, client.clientId);
    const oldView = keys.find((k) => k.keyId === old.keyId)!;
    expect(oldView).toMatchObject({ status: 'rolling', replacedBy: rolled.body.keyId });
    const graceEnd = Date.parse(oldView.expiresAt);
    expect(graceEnd).toBeGreaterThanOrEqual(before + 3600_000);
    expect(graceEnd).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(Date.parse(oldView.rolledAt)).toBeGreaterThanOrEqual(before);
    expect(keys.find((k) => k.keyId === rolled.body.keyId)).toMatchObject({ status: 'active' });
    expect(JSON.stringify(keys)).not.toContain(rolled.body.accessKey.split('.')[3]);

    // Both verify during the grace period, so both are published.
    const jwks = await app.call('GET', `/v1/clients/${client.clientId}/.well-known/openid-configuration/jwks`);
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid).sort()).toEqual([old.keyId, rolled.body.keyId].sort());
    expect(await whoami(await app.token(old.accessKey))).toBe(200);
    expect(await whoami(await app.token(rolled.body.accessKey))).toBe(200);

    const records = (await auditRecords(tenant)).filter((r) => r.action === 'access_key.rolled');
    expect(records).toHaveLength(1);
    const events = await app.call('GET', `/v1/tenants/${tenant}/audit-events?action=access_key.rolled`, {
      token: app.adminToken,
    });
    expect(events.body.items).toHaveLength(1);
    expect(events.body.items[0]).toMatchObject({
      action: 'access_key.rolled',
      target: { clientId: client.clientId, keyId: old.keyId },
      details: { newKeyId: rolled.body.keyId, graceEndsAt: oldView.expiresAt, algorithm: 'ES256', origin: 'generated' },
    });
    expect(JSON.stringify(events.body)).not.toContain(rolled.body.accessKey.split('.')[3]);
  });

  it('rolls at the 5-key limit: the key in its grace period no longer counts, and the limit still holds after', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const keys = [];
    for (let i = 0; i < 5; i++) keys.push(await app.createKey(tenant, client.clientId));
    const rolled = await app.call('POST', rollPath(tenant, client.clientId, keys[0].keyId), { token: app.adminToken });
    expect(rolled.status).toBe(201);
    const statuses = (await listKeys(tenant, client.clientId)).map((k) => k.status).sort();
    expect(statuses).toEqual(['active', 'active', 'active', 'active', 'active', 'rolling']);
    const sixth = await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: {} });
    expect(sixth.status).toBe(409);
    expect(sixth.body.code).toBe('key_limit_reached');
    // Each of the active ones can still roll.
    expect((await app.call('POST', rollPath(tenant, client.clientId, keys[1].keyId), { token: app.adminToken })).status).toBe(
      201,
    );
  });

  it('keeps the old key working through its grace period and stops it within the revocation bound after', async () => {
    const tenant = newTenant();
    const { clientId, keyId, accessKey } = await app.clientWithToken(tenant);
    const oldToken = await app.token(accessKey);
    expect(await whoami(oldToken)).toBe(200);
    const rolled = await app.call('POST', rollPath(tenant, clientId, keyId), {
      token: app.adminToken,
      body: { gracePeriodSeconds: 2 },
    });
    expect(rolled.status).toBe(201);
    // During the grace period: the warm authorizer's cached state and a fresh token both still work.
    expect(await whoami(oldToken)).toBe(200);
    expect(await whoami(await app.token(accessKey))).toBe(200);
    // The grace end (2 s) plus the revocation bound (1 s), with a little room.
    await waitSeconds(3.2);
    expect(await whoami(oldToken)).toBe(401);
    expect(await whoami(await app.token(accessKey))).toBe(401);
    expect(await whoami(await app.token(rolled.body.accessKey))).toBe(200);
    const oldView = (await listKeys(tenant, clientId)).find((k) => k.keyId === keyId)!;
    expect(oldView.status).toBe('expired');
    const jwks = await app.call('GET', `/v1/clients/${clientId}/.well-known/openid-configuration/jwks`);
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).toEqual([rolled.body.keyId]);
  });

  it('with a grace period of 0 stops the old key at once; a grace period never extends a key past its own expiry', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const now = await app.createKey(tenant, client.clientId);
    expect(
      (
        await app.call('POST', rollPath(tenant, client.clientId, now.keyId), {
          token: app.adminToken,
          body: { gracePeriodSeconds: 0 },
        })
      ).status,
    ).toBe(201);
    expect((await listKeys(tenant, client.clientId)).find((k) => k.keyId === now.keyId)!.status).toBe('expired');
    await waitSeconds(1.1);
    expect(await whoami(await app.token(now.accessKey))).toBe(401);

    const expiresAt = new Date(Date.now() + 600_000).toISOString();
    const short = await app.createKey(tenant, client.clientId, { expiresAt });
    const rolled = await app.call('POST', rollPath(tenant, client.clientId, short.keyId), {
      token: app.adminToken,
      body: { gracePeriodSeconds: 86_400 },
    });
    expect(rolled.status).toBe(201);
    expect((await listKeys(tenant, client.clientId)).find((k) => k.keyId === short.keyId)).toMatchObject({
      status: 'rolling',
      expiresAt,
    });
  });

  it('refuses keys that are not active with 409 key_not_active, and unknown or foreign keys with 404', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const revoked = await app.createKey(tenant, client.clientId);
    await app.call('DELETE', `${keysPath(tenant, client.clientId)}/${revoked.keyId}`, { token: app.adminToken });
    const expiring = await app.createKey(tenant, client.clientId, { expiresAt: new Date(Date.now() + 1000).toISOString() });
    const rolling = await app.createKey(tenant, client.clientId);
    expect((await app.call('POST', rollPath(tenant, client.clientId, rolling.keyId), { token: app.adminToken })).status).toBe(
      201,
    );
    await waitSeconds(1.1);
    for (const [keyId, why] of [
      [revoked.keyId, /revoked/],
      [expiring.keyId, /expired/],
      [rolling.keyId, /already rolled/],
    ] as const) {
      const refused = await app.call('POST', rollPath(tenant, client.clientId, keyId), { token: app.adminToken });
      expect(refused.status, keyId).toBe(409);
      expect(refused.body.code).toBe('key_not_active');
      expect(refused.body.detail).toMatch(why);
    }
    const unknown = await app.call('POST', rollPath(tenant, client.clientId, 'zzzzzzzz0000'), { token: app.adminToken });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('key_not_found');

    // Another tenant's key: under this tenant's path its client is not found; its own tenant's admin of another tenant is 403.
    const other = newTenant();
    const foreign = await app.createClient(other);
    const foreignKey = await app.createKey(other, foreign.clientId);
    const crossed = await app.call('POST', rollPath(tenant, foreign.clientId, foreignKey.keyId), { token: app.adminToken });
    expect(crossed.status).toBe(404);
    expect(crossed.body.code).toBe('client_not_found');
    const tenantAdmin = await app.clientWithToken(tenant, ['keysmith:admin']);
    const forbidden = await app.call('POST', rollPath(other, foreign.clientId, foreignKey.keyId), { token: tenantAdmin.token });
    expect(forbidden.status).toBe(403);
    expect((await listKeys(other, foreign.clientId)).map((k) => k.status)).toEqual(['active']);
  });

  it('refuses bad input with 400 and changes nothing', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const key = await app.createKey(tenant, client.clientId);
    for (const body of [
      { gracePeriodSeconds: -1 },
      { gracePeriodSeconds: 2_592_001 },
      { gracePeriodSeconds: 1.5 },
      { gracePeriodSeconds: '60' },
      { algorithm: 'HS256' },
      { expiresAt: '2020-01-01T00:00:00Z' },
      { graceSeconds: 60 },
      { publicKey: { kty: 'oct', k: 'c2VjcmV0' } },
    ]) {
      const refused = await app.call('POST', rollPath(tenant, client.clientId, key.keyId), { token: app.adminToken, body });
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.code).toMatch(/^(invalid_request|private_key_material)$/);
    }
    const grace = await app.call('POST', rollPath(tenant, client.clientId, key.keyId), {
      token: app.adminToken,
      body: { gracePeriodSeconds: 2_592_001 },
    });
    expect(grace.body.errors).toEqual([{ path: 'body.gracePeriodSeconds', message: expect.stringMatching(/at most 2592000/) }]);
    const path = await app.call('POST', rollPath(tenant, client.clientId, 'not-a-key!'), { token: app.adminToken });
    expect(path.status).toBe(400);
    expect(await listKeys(tenant, client.clientId)).toEqual([expect.objectContaining({ keyId: key.keyId, status: 'active' })]);
  });

  it('bounds what rolling can pile up: at most 5 keys in a grace period, and never past 90 stored keys', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    let keyId = (await app.createKey(tenant, client.clientId)).keyId;
    for (let i = 0; i < 5; i++) {
      const rolled = await app.call('POST', rollPath(tenant, client.clientId, keyId), { token: app.adminToken });
      expect(rolled.status).toBe(201);
      keyId = rolled.body.keyId;
    }
    const sixth = await app.call('POST', rollPath(tenant, client.clientId, keyId), { token: app.adminToken });
    expect(sixth.status).toBe(409);
    expect(sixth.body.code).toBe('key_limit_reached');
    expect(sixth.body.detail).toMatch(/5 keys in a grace period/);

    // Rolled with no grace, keys expire at once and stay stored (30 days): the 90th stored key is the last.
    const other = await app.createClient(tenant);
    keyId = (await app.createKey(tenant, other.clientId)).keyId;
    for (let stored = 1; stored < 90; stored++) {
      const rolled = await app.call('POST', rollPath(tenant, other.clientId, keyId), {
        token: app.adminToken,
        body: { gracePeriodSeconds: 0 },
      });
      expect(rolled.status, `roll ${stored}`).toBe(201);
      keyId = rolled.body.keyId;
    }
    const beyond = await app.call('POST', rollPath(tenant, other.clientId, keyId), {
      token: app.adminToken,
      body: { gracePeriodSeconds: 0 },
    });
    expect(beyond.status).toBe(409);
    expect(beyond.body.detail).toMatch(/90 stored keys/);
    const all: unknown[] = [];
    for (let cursor: string | undefined, first = true; first || cursor; first = false) {
      const page = await app.call('GET', `${keysPath(tenant, other.clientId)}?limit=100${cursor ? `&cursor=${cursor}` : ''}`, {
        token: app.adminToken,
      });
      all.push(...page.body.items);
      cursor = page.body.nextCursor;
    }
    expect(all).toHaveLength(90);
    expect((await app.call('DELETE', `/v1/tenants/${tenant}/clients/${other.clientId}`, { token: app.adminToken })).status).toBe(
      204,
    );
  });

  it('lets exactly one of several concurrent rolls of a key win', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const key = await app.createKey(tenant, client.clientId);
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        app.call('POST', rollPath(tenant, client.clientId, key.keyId), {
          token: app.adminToken,
          body: { gracePeriodSeconds: 60 },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    for (const r of results.filter((r) => r.status === 409)) expect(r.body.code).toBe('key_not_active');
    const keys = await listKeys(tenant, client.clientId);
    expect(keys).toHaveLength(2);
    const winner = results.find((r) => r.status === 201)!.body.keyId;
    expect(keys.find((k) => k.keyId === key.keyId)).toMatchObject({ status: 'rolling', replacedBy: winner });
    expect((await auditRecords(tenant)).filter((r) => r.action === 'access_key.rolled')).toHaveLength(1);
  });

  it('rolls to the caller’s own public key: no access key in the answer, and its tokens authorize', async () => {
    const tenant = newTenant();
    const { clientId, keyId, accessKey } = await app.clientWithToken(tenant);
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rolled = await app.call('POST', rollPath(tenant, clientId, keyId), {
      token: app.adminToken,
      body: { publicKey: publicKey.export({ format: 'jwk' }), gracePeriodSeconds: 600 },
    });
    expect(rolled.status).toBe(201);
    expect(rolled.body).not.toHaveProperty('accessKey');
    expect(rolled.body).toMatchObject({ algorithm: 'RS256', origin: 'registered', status: 'active' });
    expect(await whoami(await ownKeyToken(privateKey, 'RS256', rolled.body.keyId, clientId))).toBe(200);
    expect(await whoami(await app.token(accessKey))).toBe(200);
    const mismatch = await app.call('POST', rollPath(tenant, clientId, rolled.body.keyId), {
      token: app.adminToken,
      body: { publicKey: generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }), algorithm: 'ES256' },
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.code).toBe('algorithm_mismatch');
  });

  it('seals the roll: a rolled key written back without its roll, or with a later grace end, is refused', async () => {
    const tenant = newTenant();
    const { clientId, keyId, accessKey } = await app.clientWithToken(tenant);
    expect(
      (await app.call('POST', rollPath(tenant, clientId, keyId), { token: app.adminToken, body: { gracePeriodSeconds: 1 } }))
        .status,
    ).toBe(201);
    const db = createDocumentClient();
    const { Item } = await db.send(
      new GetCommand({ TableName: app.config.tables.main, Key: { pk: `CLIENT#${clientId}`, sk: `KEY#${keyId}` } }),
    );
    const { rolledAt: _rolledAt, replacedBy: _replacedBy, expiresAt: _expiresAt, expiresAtEpoch: _epoch, ...unrolled } = Item!;
    await db.send(new PutCommand({ TableName: app.config.tables.main, Item: unrolled }));
    expect((await listKeys(tenant, clientId)).map((k) => k.keyId)).not.toContain(keyId);
    await db.send(
      new PutCommand({
        TableName: app.config.tables.main,
        Item: { ...Item, expiresAt: new Date(Date.now() + 86_400_000).toISOString() },
      }),
    );
    expect((await listKeys(tenant, clientId)).map((k) => k.keyId)).not.toContain(keyId);
    await waitSeconds(2.1);
    expect(await whoami(await app.token(accessKey))).toBe(401);
    db.destroy();
  });
});
