/**
 * Key and client state through the management API and the real ClientStore on DynamoDB Local: a revoked key,
 * an expired key, a disabled and a deleted client stop authorizing within the revocation bound, in every format.
 */
import { describe, expect, it } from 'vitest';
import { createAuthorizerHandler } from '#lambdas/authorizer/handler.ts';
import { Authorizer, type AuthorizerOptions } from '#shared/authorizer.ts';
import type { ClientWithKeys } from '#shared/model.ts';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { httpApiEvent, POLICY, requestEvent, TestClock, tokenEvent } from './support.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const REVOCATION_SECONDS = 60;

function build(clock: TestClock, options: Partial<AuthorizerOptions> = {}) {
  let reads = 0;
  const store = app.management.store;
  const directory = {
    getClientWithKeys: (clientId: string): Promise<ClientWithKeys | undefined> => {
      reads += 1;
      return store.getClientWithKeys(clientId);
    },
  };
  const authorizer = new Authorizer({
    directory,
    policy: POLICY,
    revocationSeconds: REVOCATION_SECONDS,
    now: clock.now,
    ...options,
  });
  return { authorizer, handler: createAuthorizerHandler(authorizer), reads: () => reads };
}

async function formats(handler: ReturnType<typeof createAuthorizerHandler>, token: string): Promise<string[]> {
  const rest = (event: Parameters<typeof handler>[0]) =>
    handler(event).then(
      () => 'allow',
      (error: Error) => (error.message === 'Unauthorized' ? 'deny' : 'error'),
    );
  const header = `Bearer ${token}`;
  const v2 = (await handler(httpApiEvent(header))) as { isAuthorized: boolean };
  return [await rest(tokenEvent(header)), await rest(requestEvent(header)), v2.isAuthorized ? 'allow' : 'deny'];
}

describe('state changes made through the management API', () => {
  it('a revoked key stops authorizing once the revocation bound has passed on a warm authorizer, at once on a cold one', async () => {
    const tenant = newTenant();
    const { clientId, keyId, token } = await app.clientWithToken(tenant, ['invoices:read']);
    const clock = new TestClock();
    const warm = build(clock);
    expect(await warm.authorizer.authorize(token)).toMatchObject({
      allow: true,
      identity: { clientId, tenantId: tenant, keyId, scopes: ['invoices:read'] },
    });
    const revoked = await app.call('DELETE', `/v1/tenants/${tenant}/clients/${clientId}/access-keys/${keyId}`, {
      token: app.adminToken,
    });
    expect(revoked.status).toBe(204);
    expect(await build(new TestClock()).authorizer.authorize(token)).toEqual({ allow: false, reason: 'key_revoked' });
    clock.advance(REVOCATION_SECONDS * 1000);
    expect(await warm.authorizer.authorize(token)).toEqual({ allow: false, reason: 'key_revoked' });
    expect(await formats(warm.handler, token)).toEqual(['deny', 'deny', 'deny']);
    expect(warm.reads()).toBe(2);
  });

  it('an expired key stops authorizing when it expires', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const key = await app.createKey(tenant, client.clientId, { expiresAt: new Date(Date.now() + 5_000).toISOString() });
    const token = await app.token(key.accessKey);
    const clock = new TestClock();
    const { authorizer, handler } = build(clock);
    expect((await authorizer.authorize(token)).allow).toBe(true);
    clock.advance(6_000);
    expect(await authorizer.authorize(token)).toEqual({ allow: false, reason: 'key_expired' });
    expect(await formats(handler, token)).toEqual(['deny', 'deny', 'deny']);
  });

  it('a disabled client stops authorizing within the bound, and works again once enabled', async () => {
    const tenant = newTenant();
    const { clientId, token } = await app.clientWithToken(tenant);
    const clock = new TestClock();
    const { authorizer, handler } = build(clock);
    expect((await authorizer.authorize(token)).allow).toBe(true);
    const path = `/v1/tenants/${tenant}/clients/${clientId}`;
    expect((await app.call('PATCH', path, { token: app.adminToken, body: { enabled: false } })).status).toBe(200);
    clock.advance(REVOCATION_SECONDS * 1000);
    expect(await authorizer.authorize(token)).toEqual({ allow: false, reason: 'client_disabled' });
    expect(await formats(handler, token)).toEqual(['deny', 'deny', 'deny']);
    expect((await app.call('PATCH', path, { token: app.adminToken, body: { enabled: true } })).status).toBe(200);
    clock.advance(REVOCATION_SECONDS * 1000);
    expect((await authorizer.authorize(token)).allow).toBe(true);
  });

  it('a deleted client stops authorizing within the bound', async () => {
    const tenant = newTenant();
    const { clientId, token } = await app.clientWithToken(tenant);
    const clock = new TestClock();
    const { authorizer, handler } = build(clock);
    expect((await authorizer.authorize(token)).allow).toBe(true);
    expect((await app.call('DELETE', `/v1/tenants/${tenant}/clients/${clientId}`, { token: app.adminToken })).status).toBe(204);
    clock.advance(REVOCATION_SECONDS * 1000);
    expect(await authorizer.authorize(token)).toEqual({ allow: false, reason: 'unknown_client' });
    expect(await formats(handler, token)).toEqual(['deny', 'deny', 'deny']);
  });

  it('a key created after the client was cached works at once (after the 1 s unknown-kid interval)', async () => {
    const tenant = newTenant();
    const { clientId, token } = await app.clientWithToken(tenant);
    const clock = new TestClock();
    const { authorizer, reads } = build(clock);
    expect((await authorizer.authorize(token)).allow).toBe(true);
    const second = await app.createKey(tenant, clientId, { algorithm: 'ES256' });
    clock.advance(1_000);
    expect((await authorizer.authorize(await app.token(second.accessKey))).allow).toBe(true);
    expect(reads()).toBe(2);
  });
});
