/**
 * The console (issue #14) in a real browser: Debian's Chromium driven by playwright-core against the local server,
 * which serves the console as the discovery function does in AWS. Every request the page sends is recorded and
 * searched for the keys it must never carry.
 */
process.env.KEYSMITH_REVOCATION_SECONDS = '1';

import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBase62 } from '#shared/ids.ts';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { launchChromium, recordRequests, type SentRequest, screenshot } from './support.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(() => browser?.close());

/** The secret forms of an access key: the whole key, its base64 PKCS#8 part, and its private JWK member `d`. */
function secretsOf(accessKey: string): string[] {
  const privatePart = accessKey.split('.')[3] ?? '';
  const d = createPrivateKey({ key: Buffer.from(privatePart, 'base64'), format: 'der', type: 'pkcs8' }).export({
    format: 'jwk',
  }).d;
  return [accessKey, privatePart, String(d)];
}

/** Fails naming the request and the kind of secret, never the secret itself. */
function expectNoSecretSent(sent: readonly SentRequest[], secrets: Record<string, readonly string[]>) {
  expect(sent.length).toBeGreaterThan(0);
  for (const request of sent) {
    const everything = [request.url, request.body, ...Object.entries(request.headers).flat()].join('\n');
    for (const [name, forms] of Object.entries(secrets))
      for (const form of forms)
        expect(everything.includes(form), `${request.method} ${request.url} carries ${name} (form ${forms.indexOf(form)})`).toBe(
          false,
        );
  }
}

/** Nothing of the session is kept where it would outlive the tab. */
async function expectNothingStored(page: Page, context: BrowserContext) {
  // As text: this file is compiled for Node, without the DOM's types.
  const stored = await page.evaluate(`(async () => ({
    local: localStorage.length,
    session: sessionStorage.length,
    databases: (await indexedDB.databases()).length,
    cookie: document.cookie,
  }))()`);
  expect(stored).toEqual({ local: 0, session: 0, databases: 0, cookie: '' });
  expect(await context.cookies()).toEqual([]);
}

async function signIn(page: Page, accessKey: string) {
  await page.goto(`${app.baseUrl}/console/`);
  await page.getByLabel('Admin access key').fill(accessKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** A client token's claims, read (not verified): what the page put in it. */
const claimsOf = (authorization: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(authorization.replace(/^Bearer /, '').split('.')[1] ?? '', 'base64url').toString('utf8'));

/** A client-credentials request at the token endpoint with `assertion`: its status and answer. */
async function exchange(assertion: string): Promise<Record<string, unknown>> {
  const response = await app.fetch('/v1/oauth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }).toString(),
  });
  return { status: response.status, ...((await response.json()) as Record<string, unknown>) };
}

const whoamiStatus = async (accessKey: string) =>
  (await app.call('GET', '/v1/whoami', { token: await app.token(accessKey) })).status;

/** Polls whoami until it answers `expected` or 5 s pass; returns the last status and how long it took. */
async function whoamiUntil(accessKey: string, expected: number): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  let status = await whoamiStatus(accessKey);
  while (status !== expected && Date.now() - started < 5_000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = await whoamiStatus(accessKey);
  }
  return { status, ms: Date.now() - started };
}

describe('the console', () => {
  it('signs in with the admin key, creates a client and a browser-made key that works from Node until it is revoked in the page, and shows both changes in the audit', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const recorder = recordRequests(context);
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    // What the page's own script or the Content-Security-Policy complain of (a refused request's 4xx is expected).
    const complaints: string[] = [];
    page.on('pageerror', (error) => complaints.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) complaints.push(message.text());
    });
    const tenantId = newTenant('console');

    await page.goto(`${app.baseUrl}/console/`);
    await screenshot(page, 'sign-in');
    await signIn(page, app.adminAccessKey);
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    // The key is gone from the form, and from everywhere that outlives the tab.
    expect(page.url()).toBe(`${app.baseUrl}/console/`);
    await expectNothingStored(page, context);

    await page.getByLabel('Tenant id').fill(tenantId);
    await page.getByRole('button', { name: 'Open tenant' }).click();
    await page.getByRole('heading', { name: /Service clients/ }).waitFor();

    // The API's validation error beside its field, the other fields as typed.
    await page.locator('#new-client-name').fill('billing-worker');
    await page.locator('#new-client-scopes').fill('invoices:read bad"scope');
    await page.getByRole('button', { name: 'Create client' }).click();
    await expect.poll(() => page.locator('#new-client-scopes-error').textContent()).toMatch(/scope/i);
    expect(await page.locator('#new-client-scopes').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#new-client-name').inputValue()).toBe('billing-worker');

    await page.locator('#new-client-scopes').fill('invoices:read');
    await page.getByRole('button', { name: 'Create client' }).click();
    await page.getByRole('heading', { name: 'billing-worker' }).waitFor();
    const clientId = decodeURIComponent(/clients\/([^/]+)$/.exec(page.url())?.[1] ?? '');
    expect(clientId).toMatch(/^sc_/);

    // Edit: a refused change is shown beside its field; nothing changes.
    await page.locator('#edit-client-name').fill('');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => page.locator('#edit-client-name-error').isVisible()).toBe(true);
    await page.locator('#edit-client-name').fill('billing-worker-eu');
    await page.locator('#edit-client-description').fill('Bills EU customers');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'billing-worker-eu' }).waitFor();

    // A key made in this browser (the default): only its public JWK is sent.
    expect(await page.getByLabel(/In this browser/).isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Add key' }).click();
    const shown = page.locator('#new-access-key');
    await shown.waitFor();
    const browserKey = await shown.inputValue();
    expect(browserKey.split('.').slice(0, 1)).toEqual([clientId]);
    const browserKeyId = browserKey.split('.')[1] ?? '';
    await expect.poll(() => page.getByRole('alert').filter({ hasText: 'only time' }).count()).toBe(1);
    await expect.poll(() => page.getByRole('button', { name: 'Download' }).isVisible()).toBe(true);
    await screenshot(page, 'new-key');

    // The key works from Node, as the client's own.
    const who = await app.call('GET', '/v1/whoami', { token: await app.token(browserKey) });
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ clientId, keyId: browserKeyId, tenantId, scopes: 'invoices:read' });

    await page.getByRole('button', { name: 'I have stored it — close' }).click();
    await expect.poll(() => shown.count()).toBe(0);
    const row = page.locator(`tr[data-key-id="${browserKeyId}"]`);
    expect(await row.textContent()).toContain('registered');

    // A key made by Keysmith, for comparison: shown once as well.
    await page.getByLabel(/By Keysmith/).check();
    await page.getByLabel('Algorithm').selectOption('ES256');
    await page.getByRole('button', { name: 'Add key' }).click();
    await shown.waitFor();
    const serverKey = await shown.inputValue();
    // The authorizer cached this client's keys a moment ago: the new one is seen within the bound (1 s here).
    const accepted = await whoamiUntil(serverKey, 200);
    expect(accepted.status).toBe(200);
    expect(accepted.ms).toBeLessThan(1_000 + 1_500);
    // Going to another client's page leaves nothing of this one behind: not the key shown, not its Download.
    const [adminClientId, , adminTenantId] = app.adminAccessKey.split('.') as [string, string, string];
    await page.evaluate(`location.hash = '#/tenants/${adminTenantId}/clients/${adminClientId}'`);
    await page.getByRole('heading', { name: 'platform-admin' }).waitFor();
    expect(await shown.count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Download' }).count()).toBe(0);
    await page.goBack();
    await page.getByRole('heading', { name: 'billing-worker-eu' }).waitFor();
    expect(await shown.count()).toBe(0);
    await screenshot(page, 'client');

    // Revoked in the page; refused from Node within the revocation bound (KEYSMITH_REVOCATION_SECONDS=1).
    await page.getByRole('button', { name: `Revoke key ${browserKeyId}` }).click();
    await expect.poll(() => row.locator('.status').textContent()).toBe('revoked');
    const refused = await whoamiUntil(browserKey, 401);
    expect(refused.status).toBe(401);
    expect(refused.ms).toBeLessThan(1_000 + 1_500);
    expect(await whoamiStatus(serverKey)).toBe(200);

    // Both changes in the audit page; filtered by action, only the revocation.
    await page.getByRole('link', { name: 'Audit events' }).click();
    await page.getByRole('heading', { name: /Audit events/ }).waitFor();
    await expect
      .poll(() => page.locator('tr[data-action]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action'))))
      .toEqual(['access_key.revoked', 'access_key.created', 'access_key.created', 'client.updated', 'client.created']);
    expect(await page.locator('tr[data-action="access_key.revoked"]').textContent()).toContain(browserKeyId);
    await screenshot(page, 'audit');
    await page.getByLabel('Action').selectOption('access_key.revoked');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect
      .poll(() => page.locator('tr[data-action]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action'))))
      .toEqual(['access_key.revoked']);
    // A time window that ends before the client existed holds nothing.
    await page.getByLabel('Action').selectOption('');
    await page.getByLabel('To (your local time)').fill('2020-01-01T00:00');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No audit events match.').waitFor();

    await page.getByRole('link', { name: 'Clients', exact: true }).click();
    await page.getByRole('link', { name: 'billing-worker-eu' }).waitFor();
    await screenshot(page, 'clients');
    await page.getByRole('link', { name: 'Tenants', exact: true }).click();
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    await screenshot(page, 'tenants');
    await expectNothingStored(page, context);

    expect(complaints).toEqual([]);
    await recorder.settled();
    // The page talked to the API it was served by, and to nothing else.
    expect(new Set(recorder.sent.map((request) => new URL(request.url).origin))).toEqual(new Set([app.baseUrl]));
    const registered = recorder.sent
      .filter((r) => r.method === 'POST' && r.url.endsWith('/access-keys'))
      .map((r) => JSON.parse(r.body));
    expect(registered).toHaveLength(2);
    expect(registered[0].publicKey).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect(Object.keys(registered[0].publicKey).sort()).toEqual(['crv', 'kty', 'x']);
    expect(registered[1]).toEqual({ algorithm: 'ES256' });
    // Every call carried a client token, signed in the page.
    const apiCalls = recorder.sent.filter((r) => new URL(r.url).pathname.startsWith('/v1/'));
    expect(apiCalls.length).toBeGreaterThan(10);
    for (const call of apiCalls) {
      expect(call.headers.authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
      // Each names only the keysmith: scopes the session works with (so none is an assertion the token endpoint takes).
      expect(claimsOf(call.headers.authorization as string)).toMatchObject({
        scope: 'keysmith:platform-admin keysmith:admin',
        exp: expect.any(Number),
        jti: expect.any(String),
      });
    }
    expect(new Set(apiCalls.map((call) => claimsOf(call.headers.authorization as string).jti)).size).toBe(apiCalls.length);
    expectNoSecretSent(recorder.sent, {
      'the admin access key': secretsOf(app.adminAccessKey),
      'the browser-made access key': secretsOf(browserKey),
      'the Keysmith-made access key': secretsOf(serverKey),
    });
    await context.close();
  });

  it('refuses a wrong key with a clear error, and sends no key while trying', async () => {
    const context = await browser.newContext();
    const recorder = recordRequests(context);
    const page = await context.newPage();
    const error = page.locator('#sign-in-error');

    await signIn(page, 'not-an-access-key');
    await expect.poll(() => error.textContent()).toMatch(/four dot-separated parts/);

    const [clientId, keyId, tenantId, privatePart] = app.adminAccessKey.split('.') as [string, string, string, string];
    await signIn(page, `${clientId}.${keyId}.${tenantId}.${privatePart.slice(0, 40)}`);
    await expect.poll(() => error.textContent()).toMatch(/truncated/);

    // Well formed, but Keysmith knows no such key.
    const unknown = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
    const unknownKey = `sc_${randomBase62(22)}.${randomBase62(12)}.${tenantId}.${unknown}`;
    await signIn(page, unknownKey);
    await expect.poll(() => error.textContent()).toMatch(/Keysmith refused this access key/);

    // A working key of a client that is no admin.
    const worker = await app.clientWithToken(newTenant('console'), ['invoices:read']);
    await signIn(page, worker.accessKey);
    await expect.poll(() => error.textContent()).toMatch(/not an admin/);
    expect(await page.getByRole('heading', { name: 'Keysmith console' }).isVisible()).toBe(true);
    // Telling "no admin" from "refused" took one unscoped token: with no jti, so no assertion for the token endpoint.
    await recorder.settled();
    const probe = String(recorder.sent.filter((r) => r.url.endsWith('/v1/whoami')).at(-1)?.headers.authorization);
    expect(claimsOf(probe)).not.toHaveProperty('scope');
    expect(claimsOf(probe)).not.toHaveProperty('jti');
    expect(await exchange(probe.replace(/^Bearer /, ''))).toMatchObject({ status: 401, error: 'invalid_client' });

    await recorder.settled();
    expectNoSecretSent(recorder.sent, {
      'the admin access key': secretsOf(app.adminAccessKey),
      'the unknown access key': secretsOf(unknownKey),
      "the worker's access key": secretsOf(worker.accessKey),
    });
    await context.close();
  });

  it('forgets the key on reload and on sign-out: nothing is stored', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, app.adminAccessKey);
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    await page.getByLabel('Tenant id').fill(newTenant('console'));
    await page.getByRole('button', { name: 'Open tenant' }).click();
    await page.getByRole('heading', { name: /Service clients/ }).waitFor();

    await page.reload();
    await page.getByLabel('Admin access key').waitFor();
    expect(await page.getByLabel('Admin access key').inputValue()).toBe('');
    expect(await page.getByRole('heading', { name: /Service clients/ }).count()).toBe(0);
    await expectNothingStored(page, context);

    await signIn(page, app.adminAccessKey);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin access key').waitFor();
    expect(page.url()).toBe(`${app.baseUrl}/console/`);
    await expectNothingStored(page, context);
    await context.close();
  });

  it('works from the keyboard alone and on a narrow screen, as a tenant admin', async () => {
    const tenantId = newTenant('console');
    const admin = await app.clientWithToken(tenantId, ['keysmith:admin', 'invoices:write']);
    await app.createClient(tenantId, { name: 'orders-sync', scopes: ['orders:write'] });
    const context = await browser.newContext({ viewport: { width: 360, height: 780 } });
    const recorder = recordRequests(context);
    const page = await context.newPage();
    await page.goto(`${app.baseUrl}/console/`);

    // Tab into the key field, type, Tab past the file picker to the button, Enter.
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.id')).toBe('access-key');
    await page.keyboard.insertText(admin.accessKey);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Sign in');
    await page.keyboard.press('Enter');

    // A tenant admin starts at their own tenant's clients, and has no Tenants page.
    await page.getByRole('heading', { name: /Service clients/ }).waitFor();
    await page.getByRole('link', { name: 'orders-sync' }).waitFor();
    expect(await page.getByRole('link', { name: 'Tenants', exact: true }).count()).toBe(0);
    // Nothing wider than the screen: tables scroll inside their box.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    await screenshot(page, 'narrow');

    // A token the page sent cannot be exchanged at the token endpoint for an access token (which would outlive the
    // admin's key and carry its invoices:write): it names only keysmith:admin. An unscoped one of the same key can.
    await recorder.settled();
    const sentToken = recorder.sent.filter((r) => new URL(r.url).pathname === `/v1/tenants/${tenantId}/clients`).at(-1)
      ?.headers.authorization;
    expect(claimsOf(String(sentToken)).scope).toBe('keysmith:admin');
    expect(await exchange(String(sentToken).replace(/^Bearer /, ''))).toMatchObject({ status: 400, error: 'invalid_scope' });
    const unscoped = await app.token(admin.accessKey, { audience: 'http://keysmith.test', jti: randomUUID() });
    expect(await exchange(unscoped)).toMatchObject({ status: 200, scope: 'invoices:write' });

    // Another tenant is refused by the API, and the page says so.
    await page.goto(`${app.baseUrl}/console/#/tenants/${newTenant('other')}`);
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/\((forbidden|access_denied|[a-z_]+)\)/);
    await context.close();
  });
});
