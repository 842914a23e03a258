import { describe, expect, it } from 'vitest';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const clients = (tenant: string) => `/v1/tenants/${tenant}/clients`;

describe('admins and tenants (contract §6)', () => {
  it('a tenant admin manages its own tenant', async () => {
    const tenant = newTenant();
    const admin = await app.clientWithToken(tenant, ['keysmith:admin']);
    const created = await app.call('POST', clients(tenant), {
      token: admin.token,
      body: { name: 'worker', scopes: ['orders:read'] },
    });
    expect(created.status).toBe(201);
    const key = await app.call('POST', `${clients(tenant)}/${created.body.clientId}/access-keys`, { token: admin.token });
    expect(key.status).toBe(201);
    expect((await app.call('GET', clients(tenant), { token: admin.token })).status).toBe(200);
    expect((await app.call('GET', `/v1/tenants/${tenant}/audit-events`, { token: admin.token })).status).toBe(200);
  });

  it('a tenant admin gets 403 on another tenant’s routes, and 404 for another tenant’s client under its own path', async () => {
    const a = newTenant('a');
    const b = newTenant('b');
    const adminA = await app.clientWithToken(a, ['keysmith:admin']);
    const clientB = await app.createClient(b);
    for (const [method, path, body] of [
      ['GET', clients(b), undefined],
      ['POST', clients(b), { name: 'x' }],
      ['GET', `${clients(b)}/${clientB.clientId}`, undefined],
      ['PATCH', `${clients(b)}/${clientB.clientId}`, { name: 'x' }],
      ['DELETE', `${clients(b)}/${clientB.clientId}`, undefined],
      ['POST', `${clients(b)}/${clientB.clientId}/access-keys`, {}],
      ['GET', `/v1/tenants/${b}/audit-events`, undefined],
    ] as const) {
      const result = await app.call(method, path, { token: adminA.token, body });
      expect(result.status, `${method} ${path}`).toBe(403);
      expect(result.body.code).toBe('tenant_forbidden');
    }
    for (const [method, suffix, body] of [
      ['GET', '', undefined],
      ['PATCH', '', { name: 'x' }],
      ['DELETE', '', undefined],
      ['POST', '/access-keys', {}],
      ['GET', '/access-keys', undefined],
    ] as const) {
      const result = await app.call(method, `${clients(a)}/${clientB.clientId}${suffix}`, { token: adminA.token, body });
      expect(result.status, `${method} ${suffix}`).toBe(404);
      expect(result.body.code).toBe('client_not_found');
    }
    // Nothing changed in tenant B.
    expect((await app.call('GET', `${clients(b)}/${clientB.clientId}`, { token: app.adminToken })).body.name).toBe(clientB.name);
  });

  it('a client without an admin scope gets 403 admin_scope_required, and no token gets 401', async () => {
    const tenant = newTenant();
    const plain = await app.clientWithToken(tenant, ['orders:read']);
    const result = await app.call('GET', clients(tenant), { token: plain.token });
    expect(result.status).toBe(403);
    expect(result.body.code).toBe('admin_scope_required');
    const anonymous = await app.call('GET', clients(tenant));
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.code).toBe('unauthorized');
  });

  it('a token narrowed to non-admin scopes cannot manage, even for an admin client', async () => {
    const tenant = newTenant();
    const admin = await app.clientWithToken(tenant, ['keysmith:admin', 'orders:read']);
    const narrowed = await app.token(admin.accessKey, { scope: 'orders:read' });
    expect((await app.call('GET', clients(tenant), { token: narrowed })).status).toBe(403);
  });

  it('a platform admin manages every tenant', async () => {
    for (const tenant of [newTenant(), newTenant()]) {
      expect((await app.call('POST', clients(tenant), { token: app.adminToken, body: { name: 'x' } })).status).toBe(201);
    }
  });

  it('nobody grants a keysmith: scope they lack', async () => {
    const tenant = newTenant();
    const admin = await app.clientWithToken(tenant, ['keysmith:admin']);
    const escalate = await app.call('POST', clients(tenant), {
      token: admin.token,
      body: { name: 'x', scopes: ['keysmith:platform-admin'] },
    });
    expect(escalate.status).toBe(403);
    expect(escalate.body.code).toBe('scope_not_grantable');
    const worker = await app.createClient(tenant);
    const patch = await app.call('PATCH', `${clients(tenant)}/${worker.clientId}`, {
      token: admin.token,
      body: { scopes: ['keysmith:platform-admin'] },
    });
    expect(patch.status).toBe(403);
    expect(patch.body.code).toBe('scope_not_grantable');
    // A tenant admin may grant keysmith:admin (it holds it) and any application scope.
    const peer = await app.call('POST', clients(tenant), {
      token: admin.token,
      body: { name: 'peer', scopes: ['keysmith:admin', 'x:y'] },
    });
    expect(peer.status).toBe(201);
    // Unknown keysmith: scopes are reserved, for everyone.
    const reserved = await app.call('POST', clients(tenant), {
      token: app.adminToken,
      body: { name: 'x', scopes: ['keysmith:root'] },
    });
    expect(reserved.status).toBe(400);
    expect(reserved.body.code).toBe('reserved_scope');
    // The platform admin grants platform-admin.
    const platform = await app.call('POST', clients(tenant), {
      token: app.adminToken,
      body: { name: 'x', scopes: ['keysmith:platform-admin'] },
    });
    expect(platform.status).toBe(201);
  });

  it('a tenant admin cannot manage a more privileged client of its tenant (no key for a platform admin)', async () => {
    const tenant = newTenant();
    const admin = await app.clientWithToken(tenant, ['keysmith:admin']);
    const platform = await app.createClient(tenant, { scopes: ['keysmith:platform-admin'] });
    const base = `${clients(tenant)}/${platform.clientId}`;
    for (const [method, suffix, body] of [
      ['POST', '/access-keys', {}],
      ['PATCH', '', { enabled: false }],
      ['DELETE', '', undefined],
    ] as const) {
      const result = await app.call(method, `${base}${suffix}`, { token: admin.token, body });
      expect(result.status, `${method} ${suffix}`).toBe(403);
      expect(result.body.code).toBe('client_not_manageable');
    }
    const keys = await app.call('GET', `${base}/access-keys`, { token: app.adminToken });
    expect(keys.body.items).toHaveLength(0);
  });

  it('a token asking for a scope its client lacks is refused', async () => {
    const tenant = newTenant();
    const worker = await app.clientWithToken(tenant, ['orders:read']);
    const escalated = await app.token(worker.accessKey, { scope: 'orders:read keysmith:admin' });
    expect((await app.call('GET', '/v1/whoami', { token: escalated })).status).toBe(401);
  });
});
