import { describe, expect, it } from 'vitest';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

describe('the quickstart path', () => {
  it('creates a client and a key, mints a token and gets its identity from /v1/whoami', async () => {
    const tenant = newTenant();
    const created = await app.call('POST', `/v1/tenants/${tenant}/clients`, {
      token: app.adminToken,
      body: { name: 'billing-worker', scopes: ['invoices:read'] },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/v1/tenants/${tenant}/clients/${created.body.clientId}`);
    const key = await app.createKey(tenant, created.body.clientId);
    expect(key.accessKey.startsWith(`${created.body.clientId}.${key.keyId}.${tenant}.`)).toBe(true);

    const whoami = await app.call('GET', '/v1/whoami', { token: await app.token(key.accessKey) });
    expect(whoami.status).toBe(200);
    expect(whoami.body).toEqual({ clientId: created.body.clientId, tenantId: tenant, keyId: key.keyId, scopes: 'invoices:read' });
  });

  it('refuses a forged, an expired and a wrong-audience token with 401', async () => {
    const { accessKey, token } = await app.clientWithToken(newTenant());
    const forged = `${token.slice(0, -4)}${token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    const expired = await app.token(accessKey, { now: () => Date.now() - 3_600_000, lifetimeSeconds: 300 });
    const wrongAudience = await app.token(accessKey, { audience: 'https://elsewhere.example' });
    for (const bad of [forged, expired, wrongAudience]) {
      const result = await app.call('GET', '/v1/whoami', { token: bad });
      expect(result.status).toBe(401);
      expect(result.body.code).toBe('unauthorized');
      expect(result.headers.get('content-type')).toBe('application/problem+json');
    }
  });
});
