import { describe, expect, it } from 'vitest';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const expectProblem = (result: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(result.status).toBe(status);
  expect(result.headers.get('content-type')).toBe('application/problem+json');
  expect(result.body).toMatchObject({ status, code, type: `urn:keysmith:problem:${code}` });
  expect(typeof result.body.title).toBe('string');
  expect(typeof result.body.detail).toBe('string');
};

describe('bad input gets a clear problem and changes nothing', () => {
  it('malformed JSON, wrong content type, a non-object body, a missing body and an oversized body', async () => {
    const tenant = newTenant();
    const path = `/v1/tenants/${tenant}/clients`;
    const json = { 'content-type': 'application/json' };
    expectProblem(
      await app.call('POST', path, { token: app.adminToken, rawBody: '{"name":', headers: json }),
      400,
      'malformed_json',
    );
    expectProblem(
      await app.call('POST', path, { token: app.adminToken, rawBody: '{"name":"x"}', headers: { 'content-type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    );
    expectProblem(
      await app.call('POST', path, { token: app.adminToken, rawBody: '["x"]', headers: json }),
      400,
      'invalid_request',
    );
    expectProblem(await app.call('POST', path, { token: app.adminToken }), 400, 'missing_body');
    expectProblem(
      await app.call('POST', path, { token: app.adminToken, body: { name: 'x', description: 'y'.repeat(20_000) } }),
      413,
      'payload_too_large',
    );
    expect((await app.call('GET', path, { token: app.adminToken })).body.items).toEqual([]);
  });

  it('unknown fields, wrong types and broken limits name the field', async () => {
    const tenant = newTenant();
    const path = `/v1/tenants/${tenant}/clients`;
    const cases: [unknown, string][] = [
      [{ name: 'x', owner: 'me' }, 'body: unknown field: owner'],
      [{ name: 42 }, 'body.name: expected string'],
      [{ name: '' }, 'body.name'],
      [{ name: 'x', scopes: 'a b' }, 'body.scopes: expected array'],
      [{ name: 'x', scopes: ['has space'] }, 'body.scopes.0'],
      [{ name: 'x', scopes: ['a', 'a'] }, 'body.scopes'],
      [{ name: 'x', scopes: Array.from({ length: 51 }, (_, i) => `s${i}`) }, 'body.scopes'],
      [{ name: 'x', tags: { k: 1 } }, 'body.tags.k'],
      [{ name: 'x', tags: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])) }, 'body.tags'],
      [{ name: 'x', tags: { ['k'.repeat(65)]: 'v' } }, 'body.tags'],
      [{ name: 'x', tags: { k: 'v'.repeat(257) } }, 'body.tags.k'],
    ];
    for (const [body, detail] of cases) {
      const result = await app.call('POST', path, { token: app.adminToken, body });
      expectProblem(result, 400, 'invalid_request');
      expect(result.body.detail, JSON.stringify(body).slice(0, 80)).toContain(detail);
      expect(Array.isArray(result.body.errors)).toBe(true);
    }
    expect((await app.call('GET', path, { token: app.adminToken })).body.items).toEqual([]);
  });

  it('PATCH needs at least one known field', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = `/v1/tenants/${tenant}/clients/${client.clientId}`;
    expectProblem(await app.call('PATCH', path, { token: app.adminToken, body: {} }), 400, 'invalid_request');
    expectProblem(await app.call('PATCH', path, { token: app.adminToken, body: { enabled: 'no' } }), 400, 'invalid_request');
    expectProblem(await app.call('PATCH', path, { token: app.adminToken, body: { clientId: 'sc_x' } }), 400, 'invalid_request');
    expect((await app.call('GET', path, { token: app.adminToken })).body).toEqual(client);
  });

  it('malformed path and query parameters', async () => {
    const tenant = newTenant();
    const bad = [
      ['GET', '/v1/tenants/Not_Lower/clients'],
      ['GET', `/v1/tenants/${'a'.repeat(64)}/clients`],
      ['GET', '/v1/tenants/a.b/clients'],
      ['GET', `/v1/tenants/${tenant}/clients/not-a-client`],
      ['DELETE', `/v1/tenants/${tenant}/clients/sc_0000000000000000000000/access-keys/short`],
      ['GET', `/v1/tenants/${tenant}/clients?limit=0`],
      ['GET', `/v1/tenants/${tenant}/clients?limit=101`],
      ['GET', `/v1/tenants/${tenant}/clients?limit=ten`],
      ['GET', `/v1/tenants/${tenant}/clients?cursor=not-a-cursor`],
      ['GET', `/v1/tenants/${tenant}/clients?sort=name`],
      ['GET', `/v1/tenants/${tenant}/audit-events?from=yesterday`],
      ['GET', `/v1/tenants/${tenant}/audit-events?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z`],
      ['GET', `/v1/tenants/${tenant}/audit-events?action=client.exploded`],
      ['POST', `/v1/tenants/${tenant}/clients?dryRun=true`],
      ['DELETE', `/v1/tenants/${tenant}/clients/sc_0000000000000000000000?force=1`],
      ['GET', '/v1/whoami?x=1'],
    ] as const;
    for (const [method, path] of bad) {
      const result = await app.call(method, path, { token: app.adminToken });
      expect(result.status, path).toBe(400);
      expect(['invalid_request', 'invalid_cursor']).toContain(result.body.code);
    }
  });

  it('names that reach an object’s prototype are refused in bodies and queries, not a 500', async () => {
    const tenant = newTenant();
    const path = `/v1/tenants/${tenant}/clients`;
    const json = { 'content-type': 'application/json' };
    for (const rawBody of [
      '{"name":"x","tags":{"constructor":"x"}}',
      '{"name":"x","tags":{"__proto__":"x"}}',
      '{"__proto__":{"x":1},"name":"x"}',
    ]) {
      expectProblem(await app.call('POST', path, { token: app.adminToken, rawBody, headers: json }), 400, 'invalid_request');
    }
    for (const query of ['constructor=1', '__proto__=1', 'prototype=1&constructor=2']) {
      expectProblem(await app.call('GET', `/v1/health?${query}`), 400, 'invalid_request');
      expectProblem(await app.call('GET', `${path}?${query}`, { token: app.adminToken }), 400, 'invalid_request');
    }
    expect((await app.call('GET', path, { token: app.adminToken })).body.items).toEqual([]);
  });

  it('an audit cursor outside the asked from/to range is 400 invalid_cursor, not a 500', async () => {
    const tenant = newTenant();
    for (let i = 0; i < 3; i++) await app.createClient(tenant);
    const path = `/v1/tenants/${tenant}/audit-events`;
    const first = await app.call('GET', `${path}?limit=1`, { token: app.adminToken });
    expect(first.body.nextCursor).toBeTruthy();
    for (const range of ['from=2999-01-01T00:00:00Z', 'to=2000-01-01T00:00:00Z']) {
      expectProblem(
        await app.call('GET', `${path}?limit=1&cursor=${first.body.nextCursor}&${range}`, { token: app.adminToken }),
        400,
        'invalid_cursor',
      );
    }
  });

  it('a cursor of another tenant’s list cannot read across tenants', async () => {
    const a = newTenant();
    const b = newTenant();
    for (let i = 0; i < 3; i++) await app.createClient(a);
    await app.createClient(b);
    const pageA = await app.call('GET', `/v1/tenants/${a}/clients?limit=1`, { token: app.adminToken });
    const crossed = await app.call('GET', `/v1/tenants/${b}/clients?cursor=${pageA.body.nextCursor}`, { token: app.adminToken });
    expect(crossed.status).toBe(200);
    expect(crossed.body.items.every((c: { tenantId: string }) => c.tenantId === b)).toBe(true);
  });

  it('unknown routes are 404 route_not_found and wrong methods 405 with Allow', async () => {
    expectProblem(await app.call('GET', '/v1/nothing-here'), 404, 'route_not_found');
    const wrongMethod = await app.call('PUT', '/v1/health');
    expectProblem(wrongMethod, 405, 'method_not_allowed');
    expect(wrongMethod.headers.get('allow')).toBe('GET');
  });

  it('no error ever echoes a secret sent in the wrong place', async () => {
    const tenant = newTenant();
    const { accessKey } = await app.clientWithToken(tenant);
    const result = await app.call('POST', `/v1/tenants/${tenant}/clients`, {
      token: app.adminToken,
      body: { name: 'x', secret: accessKey },
    });
    expect(result.status).toBe(400);
    expect(JSON.stringify(result.body)).not.toContain(accessKey);
    const scoped = await app.call('POST', `/v1/tenants/${tenant}/clients`, {
      token: app.adminToken,
      body: { name: 'x', scopes: [`${accessKey} `] },
    });
    expect(JSON.stringify(scoped.body)).not.toContain(accessKey.split('.')[3]);
  });
});

describe('public routes', () => {
  it('health is public', async () => {
    const health = await app.call('GET', '/v1/health');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
  });

  it('openid-configuration and JWKS list only active keys, with kid, alg and use', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const a = await app.createKey(tenant, client.clientId);
    const b = await app.createKey(tenant, client.clientId, { algorithm: 'RS256' });
    await app.call('DELETE', `/v1/tenants/${tenant}/clients/${client.clientId}/access-keys/${a.keyId}`, {
      token: app.adminToken,
    });
    const config = await app.call('GET', `/v1/clients/${client.clientId}/.well-known/openid-configuration`);
    expect(config.status).toBe(200);
    expect(config.body.issuer).toBe(client.issuer);
    expect(config.body.jwks_uri).toBe(`${client.issuer}/.well-known/openid-configuration/jwks`);
    const jwks = await app.call('GET', `/v1/clients/${client.clientId}/.well-known/openid-configuration/jwks`);
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).toMatchObject({ kid: b.keyId, alg: 'RS256', use: 'sig', kty: 'RSA' });
    expect(jwks.headers.get('cache-control')).toMatch(/max-age=\d+/);
    expectProblem(
      await app.call('GET', '/v1/clients/sc_0000000000000000000000/.well-known/openid-configuration'),
      404,
      'client_not_found',
    );
    expectProblem(await app.call('GET', '/v1/clients/nope/.well-known/openid-configuration/jwks'), 400, 'invalid_request');
  });
});
