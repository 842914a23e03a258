/**
 * Whatever a client sends — any JSON body, any path segment, any query string — the answer is never a 5xx, and
 * every error is a problem+json with a code (fast-check, through the local HTTP server on DynamoDB Local).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const RUNS = 120;

async function expectClientAnswer(result: { status: number; headers: Headers; body: any }, what: string): Promise<void> {
  expect(result.status, what).toBeLessThan(500);
  if (result.status >= 400) {
    expect(result.headers.get('content-type'), what).toBe('application/problem+json');
    expect(typeof result.body.code, what).toBe('string');
  }
}

// JSON values with keys a client might try, including shapes close to valid bodies.
const key = fc.oneof(
  fc.constantFrom(
    'name',
    'description',
    'scopes',
    'tags',
    'enabled',
    'algorithm',
    'expiresAt',
    'publicKey',
    'kty',
    'crv',
    'x',
    'n',
    'e',
    'constructor',
    '__proto__',
  ),
  fc.string({ maxLength: 12 }),
);
const value = fc.letrec((tie) => ({
  any: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 40 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('any'), { maxLength: 4 }),
    fc.dictionary(key, tie('any'), { maxKeys: 5 }),
  ),
})).any;
// Bodies that pass the schema most of the time, so the property also reaches the service and DynamoDB.
const nearValid = fc.record(
  {
    name: fc.string({ minLength: 1, maxLength: 20 }),
    description: fc.string({ maxLength: 30 }),
    scopes: fc.uniqueArray(fc.stringMatching(/^[a-z:]{1,10}$/), { maxLength: 3 }),
    tags: fc.dictionary(
      fc.constantFrom('team', 'env', 'owner', 'constructor', '__proto__', 'prototype'),
      fc.string({ maxLength: 10 }),
      {
        maxKeys: 3,
      },
    ),
    enabled: fc.boolean(),
  },
  { requiredKeys: ['name'] },
);
const body = fc.oneof(nearValid, fc.dictionary(key, value, { maxKeys: 6 }), value);

describe('no 5xx for a client’s mistake', () => {
  it('any JSON body on every route that takes one', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const routes: [string, string][] = [
      ['POST', `/v1/tenants/${tenant}/clients`],
      ['PATCH', `/v1/tenants/${tenant}/clients/${client.clientId}`],
      ['POST', `/v1/tenants/${tenant}/clients/${client.clientId}/access-keys`],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), body, async ([method, path], payload) => {
        const result = await app.call(method, path, { token: app.adminToken, body: payload });
        await expectClientAnswer(result, `${method} ${path} ${JSON.stringify(payload).slice(0, 120)}`);
      }),
      { numRuns: 3 * RUNS },
    );
  });

  it('any raw bytes as a body, with any content type', async () => {
    const tenant = newTenant();
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 200, unit: 'binary' }),
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'text/plain',
          'application/x-www-form-urlencoded',
          '',
        ),
        async (raw, contentType) => {
          const result = await app.call('POST', `/v1/tenants/${tenant}/clients`, {
            token: app.adminToken,
            rawBody: raw,
            headers: contentType ? { 'content-type': contentType } : {},
          });
          await expectClientAnswer(result, `${contentType} ${JSON.stringify(raw).slice(0, 80)}`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('any path segment and query string on every route', async () => {
    const segment = fc.oneof(
      fc.string({ minLength: 1, maxLength: 30 }),
      fc.constantFrom('sc_0000000000000000000000', 'abcdefgh1234', '..', '%', '%00', '%2F', 'constructor', '__proto__'),
    );
    const query = fc.dictionary(
      fc.oneof(fc.constantFrom('limit', 'cursor', 'from', 'to', 'action'), fc.string({ maxLength: 8 })),
      fc.string({ maxLength: 30 }),
      { maxKeys: 3 },
    );
    type Template = (a: string, b: string, c: string) => [method: string, path: string];
    const templates: Template[] = [
      (a) => ['GET', `/v1/tenants/${a}/clients`],
      (a, b) => ['GET', `/v1/tenants/${a}/clients/${b}`],
      (a, b) => ['DELETE', `/v1/tenants/${a}/clients/${b}`],
      (a, b) => ['GET', `/v1/tenants/${a}/clients/${b}/access-keys`],
      (a, b, c) => ['DELETE', `/v1/tenants/${a}/clients/${b}/access-keys/${c}`],
      (a) => ['GET', `/v1/tenants/${a}/audit-events`],
      (_a, b) => ['GET', `/v1/clients/${b}/.well-known/openid-configuration`],
      (_a, b) => ['GET', `/v1/clients/${b}/.well-known/openid-configuration/jwks`],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...templates), segment, segment, segment, query, async (template, a, b, c, params) => {
        const [method, path] = template(encodeURIComponent(a), encodeURIComponent(b), encodeURIComponent(c));
        const search = new URLSearchParams(params).toString();
        const url = `${path}${search ? `?${search}` : ''}`;
        const result = await app.call(method, url, { token: app.adminToken });
        await expectClientAnswer(result, `${method} ${url}`);
      }),
      { numRuns: RUNS },
    );
  });
});
