import { generateKeyPairSync } from 'node:crypto';
import { GetCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { AUDIENCE, newTenant, ownKeyToken, type TestApp, useTestApp, waitSeconds } from '../support/app.ts';
import { forgeForSmallOrderKey, smallOrderJwk, WEAK_ED25519 } from '../support/weak-keys.ts';

process.env.KEYSMITH_REVOCATION_SECONDS = '1';
const afterRevocationBound = () => waitSeconds(1.1);

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const keysPath = (tenant: string, clientId: string) => `/v1/tenants/${tenant}/clients/${clientId}/access-keys`;

describe('access keys', () => {
  it.each(['EdDSA', 'ES256', 'RS256'] as const)('creates a %s key whose token authorizes', async (algorithm) => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const created = await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: { algorithm } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ algorithm, status: 'active', origin: 'generated' });
    expect(created.body.keyId).toMatch(/^[0-9A-Za-z]{8,16}$/);
    expect(created.body.publicKey).toMatchObject({ kid: created.body.keyId, alg: algorithm, use: 'sig' });
    expect(created.body.publicKey).not.toHaveProperty('d');
    expect(created.headers.get('cache-control')).toBe('no-store');
    const [clientId, keyId, tenantId, der] = created.body.accessKey.split('.');
    expect([clientId, keyId, tenantId]).toEqual([client.clientId, created.body.keyId, tenant]);
    expect(Buffer.from(der, 'base64').toString('base64')).toBe(der);

    const whoami = await app.call('GET', '/v1/whoami', { token: await app.token(created.body.accessKey) });
    expect(whoami.status).toBe(200);
    expect(whoami.body.keyId).toBe(created.body.keyId);
  });

  it('defaults to EdDSA with an empty body or none at all', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const noBody = await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken });
    expect(noBody.status).toBe(201);
    expect(noBody.body.algorithm).toBe('EdDSA');
  });

  it('lists keys without private material and never shows the access key again', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const a = await app.createKey(tenant, client.clientId);
    const b = await app.createKey(tenant, client.clientId, { algorithm: 'ES256' });
    const list = await app.call('GET', keysPath(tenant, client.clientId), { token: app.adminToken });
    expect(list.status).toBe(200);
    expect(list.body.items.map((k: { keyId: string }) => k.keyId).sort()).toEqual([a.keyId, b.keyId].sort());
    const text = JSON.stringify(list.body);
    expect(text).not.toContain('accessKey');
    expect(text).not.toContain(a.accessKey.split('.')[3]);

    const page = await app.call('GET', `${keysPath(tenant, client.clientId)}?limit=1`, { token: app.adminToken });
    expect(page.body.items).toHaveLength(1);
    const next = await app.call('GET', `${keysPath(tenant, client.clientId)}?limit=1&cursor=${page.body.nextCursor}`, {
      token: app.adminToken,
    });
    expect(next.body.items).toHaveLength(1);
    expect(next.body.items[0].keyId).not.toBe(page.body.items[0].keyId);
    expect(next.body).not.toHaveProperty('nextCursor');
  });

  it('revokes a key: 204, its status shows revoked, its tokens stop within the bound, and a repeat is a no-op', async () => {
    const tenant = newTenant();
    const { clientId, keyId, token } = await app.clientWithToken(tenant);
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(200);
    const revoked = await app.call('DELETE', `${keysPath(tenant, clientId)}/${keyId}`, { token: app.adminToken });
    expect(revoked.status).toBe(204);
    const list = await app.call('GET', keysPath(tenant, clientId), { token: app.adminToken });
    expect(list.body.items[0]).toMatchObject({ keyId, status: 'revoked' });
    expect(list.body.items[0].revokedAt).toBeTruthy();
    expect((await app.call('GET', `/v1/clients/${clientId}/.well-known/openid-configuration/jwks`)).body.keys).toEqual([]);
    await afterRevocationBound();
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(401);
    expect((await app.call('DELETE', `${keysPath(tenant, clientId)}/${keyId}`, { token: app.adminToken })).status).toBe(204);
    const missing = await app.call('DELETE', `${keysPath(tenant, clientId)}/zzzzzzzz0000`, { token: app.adminToken });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('key_not_found');
  });

  it('allows at most 5 active keys; a revoked key frees a place', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const keys = [];
    for (let i = 0; i < 5; i++) keys.push(await app.createKey(tenant, client.clientId));
    const sixth = await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: {} });
    expect(sixth.status).toBe(409);
    expect(sixth.body.code).toBe('key_limit_reached');
    await app.call('DELETE', `${keysPath(tenant, client.clientId)}/${keys[0].keyId}`, { token: app.adminToken });
    expect((await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: {} })).status).toBe(201);
  });

  it('enforces the limit atomically: of 10 concurrent creates exactly 5 succeed, the rest get 409', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: {} })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 201, 201, 201, 409, 409, 409, 409, 409]);
    for (const r of results.filter((r) => r.status === 409)) expect(r.body.code).toBe('key_limit_reached');
    const list = await app.call('GET', keysPath(tenant, client.clientId), { token: app.adminToken });
    expect(list.body.items.filter((k: { status: string }) => k.status === 'active')).toHaveLength(5);
  });

  it('an expired key does not count against the limit and does not authorize', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const soon = new Date(Date.now() + 1500).toISOString();
    const short = await app.createKey(tenant, client.clientId, { expiresAt: soon });
    expect(short.expiresAt).toBe(soon);
    for (let i = 0; i < 4; i++) await app.createKey(tenant, client.clientId);
    const token = await app.token(short.accessKey);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(401);
    const list = await app.call('GET', keysPath(tenant, client.clientId), { token: app.adminToken });
    expect(list.body.items.find((k: { keyId: string }) => k.keyId === short.keyId).status).toBe('expired');
    expect((await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: {} })).status).toBe(201);
  });

  it('registers the caller’s own public key: no accessKey in the response, and its tokens authorize', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant, { scopes: ['a', 'b'] });
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const created = await app.call('POST', keysPath(tenant, client.clientId), {
      token: app.adminToken,
      body: { publicKey: jwk },
    });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('accessKey');
    expect(created.body).toMatchObject({ algorithm: 'ES256', origin: 'registered' });
    const token = await ownKeyToken(privateKey, 'ES256', created.body.keyId, client.clientId, { scope: 'b' });
    const whoami = await app.call('GET', '/v1/whoami', { token });
    expect(whoami.status).toBe(200);
    expect(whoami.body.scopes).toBe('b');
  });

  it('refuses a registered key with private material, of an unsupported type, or not matching algorithm', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = keysPath(tenant, client.clientId);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const privateJwk = ec.privateKey.export({ format: 'jwk' });
    const withPrivate = await app.call('POST', path, { token: app.adminToken, body: { publicKey: privateJwk } });
    expect(withPrivate.status).toBe(400);
    expect(withPrivate.body.code).toBe('private_key_material');
    expect(JSON.stringify(withPrivate.body)).not.toContain(privateJwk.d as string);

    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
    expect((await app.call('POST', path, { token: app.adminToken, body: { publicKey: p384 } })).body.code).toBe(
      'unsupported_key_type',
    );
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    expect((await app.call('POST', path, { token: app.adminToken, body: { publicKey: rsa1024 } })).body.code).toBe(
      'unsupported_key_type',
    );
    const garbage = await app.call('POST', path, {
      token: app.adminToken,
      body: { publicKey: { kty: 'OKP', crv: 'Ed25519', x: 'nope' } },
    });
    expect(garbage.status).toBe(400);
    expect(garbage.body.code).toBe('invalid_public_key');
    const mismatch = await app.call('POST', path, {
      token: app.adminToken,
      body: { publicKey: ec.publicKey.export({ format: 'jwk' }), algorithm: 'EdDSA' },
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.code).toBe('algorithm_mismatch');
    const jwkMismatch = await app.call('POST', path, {
      token: app.adminToken,
      body: { publicKey: { ...ec.publicKey.export({ format: 'jwk' }), alg: 'RS256' } },
    });
    expect(jwkMismatch.status).toBe(400);
    expect(jwkMismatch.body.code).toBe('algorithm_mismatch');
  });

  it('refuses weak registered keys: small-order or non-canonical Ed25519 points, RSA exponents other than 65537', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = keysPath(tenant, client.clientId);
    for (const hex of WEAK_ED25519) {
      const publicKey = { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(hex, 'hex').toString('base64url') };
      const result = await app.call('POST', path, { token: app.adminToken, body: { publicKey } });
      expect(result.status, hex).toBe(400);
      expect(result.body.code).toBe('weak_public_key');
    }
    const { n } = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    for (const e of ['AQ', 'Aw', 'AQAD']) {
      const result = await app.call('POST', path, { token: app.adminToken, body: { publicKey: { kty: 'RSA', n, e } } });
      expect(result.status, e).toBe(400);
      expect(result.body.code).toBe('weak_public_key');
    }
    expect((await app.call('GET', path, { token: app.adminToken })).body.items).toEqual([]);
  });

  it('never trusts a weak key already in the table: a signature forged for a small-order key gets 401', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant, { scopes: ['billing:write'] });
    const keyId = 'weakkey00001';
    const publicKey = smallOrderJwk();
    // Sealed by Keysmith itself, as if stored before registration refused such keys.
    const store = app.management.store;
    const current = (await store.getClientWithKeys(client.clientId))!;
    const next = { ...current.client, version: current.client.version + 1 };
    const weak = {
      keyId,
      clientId: client.clientId,
      tenantId: tenant,
      algorithm: 'EdDSA' as const,
      publicKey,
      origin: 'registered' as const,
      status: 'active' as const,
      createdAt: new Date().toISOString(),
      sealedVersion: next.version,
    };
    await createDocumentClient().send(
      new TransactWriteCommand({
        TransactItems: await store.writeState({
          client: next,
          keys: [...current.keys, weak],
          expectedVersion: current.client.version,
          newKeyIds: [keyId],
        }),
      }),
    );
    expect((await store.getClientWithKeys(client.clientId))?.keys.map((k) => k.keyId)).toContain(keyId);
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const forged = forgeForSmallOrderKey(
      (jti) =>
        `${b64({ alg: 'EdDSA', kid: keyId })}.${b64({ iss: client.issuer, sub: client.clientId, aud: AUDIENCE, iat: now, exp: now + 300, jti: String(jti) })}`,
    );
    expect(forged, 'node:crypto accepts some forged signature for a small-order key').toBeDefined();
    const result = await app.call('GET', '/v1/whoami', { token: forged });
    expect(result.status).toBe(401);
    const jwks = await app.call('GET', `/v1/clients/${client.clientId}/.well-known/openid-configuration/jwks`);
    expect(jwks.body.keys).toEqual([]);
  });

  it('bounds stored keys: revoked keys expire by TTL, at most 90 are kept, and a delete removes them all at once', async () => {
    const tenant = newTenant();
    const { clientId, keyId } = await app.clientWithToken(tenant);
    await app.call('DELETE', `${keysPath(tenant, clientId)}/${keyId}`, { token: app.adminToken });
    const db = createDocumentClient();
    const { Item } = await db.send(
      new GetCommand({ TableName: app.config.tables.main, Key: { pk: `CLIENT#${clientId}`, sk: `KEY#${keyId}` } }),
    );
    expect(Math.abs((Item?.expiresAtEpoch as number) - (Math.floor(Date.now() / 1000) + 30 * 86_400))).toBeLessThan(60);

    // More revoked keys, planted (and sealed) through the store: creating and revoking them through the API would only be slower.
    const store = app.management.store;
    const plant = async (from: number, count: number) => {
      const current = (await store.getClientWithKeys(clientId))!;
      const version = current.client.version + 1;
      const revoked = current.keys.find((k) => k.keyId === keyId)!;
      const planted = Array.from({ length: count }, (_, i) => ({
        ...revoked,
        keyId: `planted${String(from + i).padStart(4, '0')}`,
        sealedVersion: version,
      }));
      await db.send(
        new TransactWriteCommand({
          TransactItems: await store.writeState({
            client: { ...current.client, version },
            keys: [...current.keys, ...planted],
            expectedVersion: current.client.version,
            newKeyIds: planted.map((k) => k.keyId),
          }),
        }),
      );
    };
    await plant(0, 89);
    const full = await app.call('POST', keysPath(tenant, clientId), { token: app.adminToken, body: {} });
    expect(full.status).toBe(409);
    expect(full.body.code).toBe('key_limit_reached');
    expect(full.body.detail).toContain('90 stored keys');

    // Beyond the cap (only possible around Keysmith), a delete still works: inert keys follow the transaction.
    await plant(89, 10);
    expect((await app.call('DELETE', `/v1/tenants/${tenant}/clients/${clientId}`, { token: app.adminToken })).status).toBe(204);
    const { Items = [] } = await db.send(
      new QueryCommand({
        TableName: app.config.tables.main,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `CLIENT#${clientId}` },
      }),
    );
    expect(Items).toEqual([]);
  });

  it('refuses an expiresAt in the past or without a time zone', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    for (const expiresAt of ['2020-01-01T00:00:00Z', '2099-01-01T00:00:00', 'tomorrow']) {
      const result = await app.call('POST', keysPath(tenant, client.clientId), { token: app.adminToken, body: { expiresAt } });
      expect(result.status, expiresAt).toBe(400);
      expect(result.body.code).toBe('invalid_request');
    }
  });
});
