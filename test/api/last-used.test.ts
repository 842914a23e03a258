/**
 * `lastUsedAt` on key and client views (contract §11), end to end through the local server: the authorizer and the
 * token endpoint record uses in the usage table, the management API shows them, the CLI finds unused clients.
 */
process.env.KEYSMITH_LAST_USED_SECONDS = '1';

import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { run } from '#cli/main.ts';
import { ISSUER_BASE, newTenant, type TestApp, useTestApp, waitSeconds } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

/** Waits for the writes the local server's authorizer and token endpoint started (they never wait themselves). */
async function settled(): Promise<void> {
  const [authorizer, token] = await Promise.all([import('#lambdas/authorizer/handler.ts'), import('#lambdas/token/handler.ts')]);
  await Promise.all([authorizer.usage.flush(), token.usage.flush()]);
}

const keysPath = (tenant: string, clientId: string) => `/v1/tenants/${tenant}/clients/${clientId}/access-keys`;

async function keyView(tenant: string, clientId: string, keyId: string): Promise<Record<string, any>> {
  const list = await app.call('GET', keysPath(tenant, clientId), { token: app.adminToken });
  return list.body.items.find((k: { keyId: string }) => k.keyId === keyId);
}

async function clientView(tenant: string, clientId: string): Promise<Record<string, any>> {
  return (await app.call('GET', `/v1/tenants/${tenant}/clients/${clientId}`, { token: app.adminToken })).body;
}

describe('lastUsedAt', () => {
  it('is absent until a use, appears after one, moves forward after a later one, and stays for a refused token', async () => {
    const tenant = newTenant();
    const { clientId, keyId, accessKey, token } = await app.clientWithToken(tenant);
    const idle = await app.createKey(tenant, clientId);
    expect(await keyView(tenant, clientId, keyId)).not.toHaveProperty('lastUsedAt');
    expect(await clientView(tenant, clientId)).not.toHaveProperty('lastUsedAt');

    const before = Date.now();
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(200);
    await settled();
    const first = (await keyView(tenant, clientId, keyId)).lastUsedAt;
    expect(Date.parse(first)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(first)).toBeLessThanOrEqual(Date.now());
    expect((await clientView(tenant, clientId)).lastUsedAt).toBe(first);
    const listed = await app.call('GET', `/v1/tenants/${tenant}/clients`, { token: app.adminToken });
    expect(listed.body.items[0]).toMatchObject({ clientId, lastUsedAt: first });

    // A refused token of the idle key (wrong audience) records nothing.
    const refused = await app.token(idle.accessKey, { audience: 'https://elsewhere.example' });
    expect((await app.call('GET', '/v1/whoami', { token: refused })).status).toBe(401);
    await settled();
    expect(await keyView(tenant, clientId, idle.keyId)).not.toHaveProperty('lastUsedAt');

    // The window is 1 s here: a use after it moves the time forward (the same cached token counts as a use).
    await waitSeconds(1.1);
    expect((await app.call('GET', '/v1/whoami', { token })).status).toBe(200);
    await settled();
    const second = (await keyView(tenant, clientId, keyId)).lastUsedAt;
    expect(Date.parse(second)).toBeGreaterThan(Date.parse(first));
    expect((await clientView(tenant, clientId)).lastUsedAt).toBe(second);

    // The idle key's first use makes it the client's latest.
    await waitSeconds(0.01);
    expect((await app.call('GET', '/v1/whoami', { token: await app.token(idle.accessKey) })).status).toBe(200);
    await settled();
    const idleUsed = (await keyView(tenant, clientId, idle.keyId)).lastUsedAt;
    expect(idleUsed >= second).toBe(true);
    expect((await clientView(tenant, clientId)).lastUsedAt).toBe(idleUsed);
    expect(JSON.stringify(await clientView(tenant, clientId))).not.toContain(accessKey.split('.')[3]);
  });

  it('records the key of an assertion the token endpoint accepts, and nothing for one it refuses', async () => {
    const tenant = newTenant();
    const { clientId, keyId, accessKey } = await app.clientWithToken(tenant, ['invoices:read']);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const assertion = await app.token(accessKey, {
      audience: 'https://elsewhere.example',
      jti: randomUUID(),
      lifetimeSeconds: 60,
    });
    const refused = await app.call('POST', '/v1/oauth/token', {
      headers: form,
      rawBody: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
    });
    expect(refused.status).toBe(400);
    await settled();
    expect(await keyView(tenant, clientId, keyId)).not.toHaveProperty('lastUsedAt');

    const good = await app.token(accessKey, { audience: ISSUER_BASE, jti: randomUUID(), lifetimeSeconds: 60 });
    const granted = await app.call('POST', '/v1/oauth/token', {
      headers: form,
      rawBody: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: good }).toString(),
    });
    expect(granted.status).toBe(200);
    await settled();
    expect((await keyView(tenant, clientId, keyId)).lastUsedAt).toEqual(expect.any(String));
  });

  it('lets the CLI find clients unused since a time, and show last use in keys list', async () => {
    const tenant = newTenant();
    const used = await app.clientWithToken(tenant);
    const unused = await app.clientWithToken(tenant);
    await waitSeconds(0.05);
    const since = new Date().toISOString();
    expect((await app.call('GET', '/v1/whoami', { token: used.token })).status).toBe(200);
    await settled();
    const cli = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const connection = ['--base-url', app.baseUrl, '--access-key', app.adminAccessKey, '--tenant', tenant];
      const code = await run(
        [...args, ...connection],
        (line) => out.push(line),
        (line) => err.push(line),
      );
      return { code, stdout: out.join('\n'), stderr: err.join('\n') };
    };
    const json = await cli(['clients', 'list', '--unused-since', since, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).items.map((c: { clientId: string }) => c.clientId)).toEqual([unused.clientId]);
    const human = await cli(['clients', 'list', '--unused-since', since]);
    expect(human.stdout).toContain(unused.clientId);
    expect(human.stdout).not.toContain(used.clientId);
    expect(human.stderr).toMatch(/1 of 2 clients unused since/);
    // A span back from now: both clients were created within the last day, so neither has been idle that long.
    const span = await cli(['clients', 'list', '--unused-since', '1d']);
    expect(span.stdout).toMatch(/No client of tenant .* is unused since .*\(2 checked\)/);
    const bad = await cli(['clients', 'list', '--unused-since', 'last tuesday']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--unused-since takes an ISO 8601 time/);
    const keys = await cli(['keys', 'list', used.clientId]);
    expect(keys.stdout.split('\n')[0]).toMatch(/LAST USED$/);
    expect(keys.stdout).toMatch(/\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
  });
});
