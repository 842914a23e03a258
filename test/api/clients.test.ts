import { describe, expect, it } from 'vitest';
import { newTenant, type TestApp, useTestApp, waitSeconds } from '../support/app.ts';

// A short revocation bound, so this file can watch a disabled or deleted client stop authorizing.
process.env.KEYSMITH_REVOCATION_SECONDS = '1';
const afterRevocationBound = () => waitSeconds(1.1);

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const clientsPath = (tenant: string) => `/v1/tenants/${tenant}/clients`;

describe('service clients', () => {
  it('creates a client with defaults and reads it back', async () => {
    const tenant = newTenant();
    const created = await app.call('POST', clientsPath(tenant), { token: app.adminToken, body: { name: 'reporting' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ tenantId: tenant, name: 'reporting', scopes: [], tags: {}, enabled: true });
    expect(created.body.clientId).toMatch(/^sc_[0-9A-Za-z]{22}$/);
    expect(created.body.issuer).toBe(`http://keysmith.test/v1/clients/${created.body.clientId}`);
    expect(created.body).not.toHaveProperty('version');
    expect(created.headers.get('cache-control')).toBe('no-store');

    const read = await app.call('GET', `${clientsPath(tenant)}/${created.body.clientId}`, { token: app.adminToken });
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
  });

  it('lists a tenant’s clients newest first, paginated with limit and cursor', async () => {
    const tenant = newTenant();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await app.createClient(tenant, { name: `c${i}` })).clientId);
    await app.createClient(newTenant(), { name: 'other tenant' });

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await app.call('GET', `${clientsPath(tenant)}?limit=2${cursor ? `&cursor=${cursor}` : ''}`, {
        token: app.adminToken,
      });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((c: { clientId: string }) => c.clientId));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());

    const all = await app.call('GET', clientsPath(tenant), { token: app.adminToken });
    expect(all.body.items).toHaveLength(5);
    expect(all.body).not.toHaveProperty('nextCursor');
  });

  it('changes a client with PATCH and keeps what it was not told to change', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant, { name: 'before', description: 'keep me', tags: { team: 'a' } });
    const path = `${clientsPath(tenant)}/${client.clientId}`;
    const patched = await app.call('PATCH', path, {
      token: app.adminToken,
      body: { name: 'after', scopes: ['orders:write'], enabled: false },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      name: 'after',
      description: 'keep me',
      tags: { team: 'a' },
      scopes: ['orders:write'],
      enabled: false,
    });
    expect(Date.parse(patched.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(client.updatedAt));
    expect((await app.call('GET', path, { token: app.adminToken })).body).toEqual(patched.body);
  });

  it('disabling a client stops its tokens; enabling it again restores them', async () => {
    const tenant = newTenant();
    const { clientId, token } = await app.clientWithToken(tenant);
    const path = `${clientsPath(tenant)}/${clientId}`;
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(200);
    await app.call('PATCH', path, { token: app.adminToken, body: { enabled: false } });
    expect((await app.call('GET', `/v1/clients/${clientId}/.well-known/openid-configuration/jwks`)).body.keys).toEqual([]);
    await afterRevocationBound();
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(401);
    await app.call('PATCH', path, { token: app.adminToken, body: { enabled: true } });
    await afterRevocationBound();
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(200);
  });

  it('deletes a client and revokes its keys: 204, then 404, and its tokens stop', async () => {
    const tenant = newTenant();
    const { clientId, token } = await app.clientWithToken(tenant);
    const path = `${clientsPath(tenant)}/${clientId}`;
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(200);
    const deleted = await app.call('DELETE', path, { token: app.adminToken });
    expect(deleted.status).toBe(204);
    expect((await app.call('GET', path, { token: app.adminToken })).body.code).toBe('client_not_found');
    expect((await app.call('DELETE', path, { token: app.adminToken })).status).toBe(404);
    expect((await app.call('GET', `/v1/clients/${clientId}/.well-known/openid-configuration/jwks`)).status).toBe(404);
    expect(await app.management.store.getClientWithKeys(clientId)).toBeUndefined();
    await afterRevocationBound();
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(401);
  });

  it('answers unknown clients with 404 client_not_found on every client route', async () => {
    const tenant = newTenant();
    const missing = 'sc_0000000000000000000000';
    for (const [method, suffix, body] of [
      ['GET', '', undefined],
      ['PATCH', '', { name: 'x' }],
      ['DELETE', '', undefined],
      ['POST', '/access-keys', {}],
      ['GET', '/access-keys', undefined],
      ['DELETE', '/access-keys/abcdefgh1234', undefined],
    ] as const) {
      const result = await app.call(method, `${clientsPath(tenant)}/${missing}${suffix}`, { token: app.adminToken, body });
      expect(result.status, `${method} ${suffix}`).toBe(404);
      expect(result.body.code).toBe('client_not_found');
    }
  });
});
