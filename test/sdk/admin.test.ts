/** KeysmithAdmin against the local server: every route of contract §5, its pagination, and its errors. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, expectTypeOf, it, vi } from 'vitest';
import {
  type AccessKey,
  type AuditEvent,
  KeysmithAdmin,
  KeysmithApiError,
  KeysmithConnectionError,
  type ServiceClient,
  TokenProvider,
  type WhoAmI,
} from '#sdk/index.ts';
import type { clientView, keyView } from '#shared/api.ts';
import type { ListedAuditEvent } from '#shared/audit/log.ts';
import type { identityContext } from '#shared/authorizer.ts';
import { AUDIENCE, ISSUER_BASE, newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { waitLinked } from '../support/audit.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

let admin: KeysmithAdmin;
beforeAll(() => {
  admin = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, issuerBase: ISSUER_BASE, audience: AUDIENCE });
});

/** The private half of an access key: what must never be printed. */
const secretOf = (accessKey: string) => accessKey.split('.')[3] as string;

/** Runs `call` and returns what it threw. */
async function failure(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

/** A fetch that answers every request with `response` and records what was asked. */
function answering(response: (init: RequestInit | undefined) => Response) {
  const requests: { url: string; init: RequestInit | undefined }[] = [];
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    requests.push({ url: String(input), init });
    return response(init);
  }) as typeof globalThis.fetch;
  return { requests, fetch };
}

describe('KeysmithAdmin', () => {
  it("has plain types that the API's own views fit (checked by tsc)", () => {
    expectTypeOf<ReturnType<typeof clientView>>().toExtend<ServiceClient>();
    expectTypeOf<ReturnType<typeof keyView>>().toExtend<AccessKey>();
    expectTypeOf<ListedAuditEvent>().toExtend<AuditEvent>();
    expectTypeOf<ReturnType<typeof identityContext>>().toExtend<WhoAmI>();
  });

  it('answers health (no token sent) and whoami', async () => {
    const { requests, fetch } = answering(() => Response.json({ status: 'ok' }));
    const offline = new KeysmithAdmin({ baseUrl: 'https://keys.example.test/', accessKey: app.adminAccessKey, fetch });
    expect(await offline.health()).toEqual({ status: 'ok' });
    expect(requests[0]?.url).toBe('https://keys.example.test/v1/health');
    expect(new Headers(requests[0]?.init?.headers).has('authorization')).toBe(false);

    expect(await admin.health()).toEqual({ status: 'ok' });
    const me = await admin.whoami();
    expect(me).toEqual({
      clientId: admin.identity.clientId,
      tenantId: admin.identity.tenantId,
      keyId: admin.identity.keyId,
      scopes: expect.stringContaining('keysmith:platform-admin'),
    });
  });

  it('creates, lists, reads, updates and deletes clients', async () => {
    const tenant = newTenant();
    const created = await admin.createClient(tenant, {
      name: 'billing-worker',
      description: 'bills',
      scopes: ['invoices:read'],
      tags: { team: 'billing' },
    });
    expect(created).toMatchObject({
      tenantId: tenant,
      name: 'billing-worker',
      description: 'bills',
      scopes: ['invoices:read'],
      tags: { team: 'billing' },
      enabled: true,
      issuer: `${ISSUER_BASE}/v1/clients/${created.clientId}`,
    });
    expect(created.clientId).toMatch(/^sc_[A-Za-z0-9]{22}$/);
    expect(await admin.getClient(tenant, created.clientId)).toEqual(created);

    const updated = await admin.updateClient(tenant, created.clientId, { enabled: false, tags: { team: 'core' } });
    expect(updated).toMatchObject({ enabled: false, tags: { team: 'core' }, scopes: ['invoices:read'] });

    const others = [await admin.createClient(tenant, { name: 'two' }), await admin.createClient(tenant, { name: 'three' })];
    const first = await admin.listClients(tenant, { limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toEqual(expect.any(String));
    const rest = await admin.listClients(tenant, { limit: 2, cursor: first.nextCursor });
    expect(rest.items).toHaveLength(1);
    expect(rest.nextCursor).toBeUndefined();
    const all: string[] = [];
    for await (const client of admin.iterateClients(tenant, { limit: 1 })) all.push(client.clientId);
    expect(all.sort()).toEqual([created.clientId, ...others.map((c) => c.clientId)].sort());

    await admin.deleteClient(tenant, created.clientId);
    const gone = await failure(() => admin.getClient(tenant, created.clientId));
    expect(gone).toBeInstanceOf(KeysmithApiError);
    expect(gone).toMatchObject({ status: 404, code: 'client_not_found', title: 'Not found', errors: [] });
    expect((gone as KeysmithApiError).message).toMatch(/ \(client_not_found, HTTP 404\)$/);
  });

  it('creates a generated key and registers an own public JWK; lists, revokes and publishes them', async () => {
    const tenant = newTenant();
    const client = await admin.createClient(tenant, { name: 'keys', scopes: ['invoices:read'] });
    const expiresAt = new Date(Date.now() + 86_400_000);
    const generated = await admin.createKey(tenant, client.clientId, { algorithm: 'ES256', expiresAt });
    expect(generated).toMatchObject({
      clientId: client.clientId,
      algorithm: 'ES256',
      origin: 'generated',
      status: 'active',
      expiresAt: expiresAt.toISOString(),
      publicKey: { kty: 'EC', crv: 'P-256', kid: generated.keyId, alg: 'ES256', use: 'sig' },
    });
    expect(generated.accessKey?.startsWith(`${client.clientId}.${generated.keyId}.${tenant}.`)).toBe(true);

    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const registered = await admin.createKey(tenant, client.clientId, { publicKey: await exportJWK(publicKey) });
    expect(registered).toMatchObject({ algorithm: 'ES256', origin: 'registered', status: 'active' });
    expect(registered.accessKey).toBeUndefined();
    const own = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: registered.keyId })
      .setIssuer(`${ISSUER_BASE}/v1/clients/${client.clientId}`)
      .setSubject(client.clientId)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    expect((await app.call('GET', '/v1/whoami', { token: own })).status).toBe(200);

    // The generated key works too, through a TokenProvider of the caller's own.
    const provider = new TokenProvider({ accessKey: generated.accessKey as string, issuerBase: ISSUER_BASE, audience: AUDIENCE });
    const asClient = new KeysmithAdmin({ baseUrl: app.baseUrl, tokenProvider: provider });
    expect(await asClient.whoami()).toEqual({
      clientId: client.clientId,
      tenantId: tenant,
      keyId: generated.keyId,
      scopes: 'invoices:read',
    });

    // A private JWK never leaves: refused before any request.
    const { requests, fetch } = answering(() => new Response(null, { status: 500 }));
    const offline = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch });
    const privateJwk = await exportJWK(privateKey);
    const refused = await failure(() => offline.createKey(tenant, client.clientId, { publicKey: privateJwk }));
    expect(refused).toBeInstanceOf(TypeError);
    expect(String(refused)).not.toContain(privateJwk.d as string);
    expect(requests).toHaveLength(0);

    const page = await admin.listKeys(tenant, client.clientId, { limit: 1 });
    expect(page.items).toHaveLength(1);
    expect(page.nextCursor).toEqual(expect.any(String));
    const keys: AccessKey[] = [];
    for await (const key of admin.iterateKeys(tenant, client.clientId, { limit: 1 })) keys.push(key);
    expect(keys.map((k) => k.keyId).sort()).toEqual([generated.keyId, registered.keyId].sort());
    expect(JSON.stringify(keys)).not.toContain(secretOf(generated.accessKey as string));

    const discovery = await admin.openidConfiguration(client.clientId);
    expect(discovery).toMatchObject({
      issuer: `${ISSUER_BASE}/v1/clients/${client.clientId}`,
      jwks_uri: `${ISSUER_BASE}/v1/clients/${client.clientId}/.well-known/openid-configuration/jwks`,
    });
    expect((await admin.jwks(client.clientId)).keys.map((k) => k.kid).sort()).toEqual([generated.keyId, registered.keyId].sort());

    const document = await admin.openapi();
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths as object)).toContain('/v1/tenants/{tenantId}/clients/{clientId}/access-keys');

    await admin.revokeKey(tenant, client.clientId, registered.keyId);
    const after = (await admin.listKeys(tenant, client.clientId)).items.find((k) => k.keyId === registered.keyId);
    expect(after).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
    expect((await admin.jwks(client.clientId)).keys.map((k) => k.kid)).toEqual([generated.keyId]);
  });

  it('rolls a key: a new key, the old one rolling until its grace ends; refuses what is not active, before or by the API', async () => {
    const tenant = newTenant();
    const client = await admin.createClient(tenant, { name: 'roll' });
    const old = await admin.createKey(tenant, client.clientId, { algorithm: 'RS256' });
    const next = await admin.rollKey(tenant, client.clientId, old.keyId, { gracePeriodSeconds: 600 });
    expect(next).toMatchObject({ clientId: client.clientId, algorithm: 'RS256', origin: 'generated', status: 'active' });
    expect(next.accessKey?.startsWith(`${client.clientId}.${next.keyId}.${tenant}.`)).toBe(true);
    const rolled = (await admin.listKeys(tenant, client.clientId)).items.find((k) => k.keyId === old.keyId);
    expect(rolled).toMatchObject({ status: 'rolling', replacedBy: next.keyId, rolledAt: expect.any(String) });
    expect(Date.parse(rolled?.expiresAt as string) - Date.now()).toBeLessThanOrEqual(600_000);

    const again = await failure(() => admin.rollKey(tenant, client.clientId, old.keyId));
    expect(again).toBeInstanceOf(KeysmithApiError);
    expect(again).toMatchObject({ status: 409, code: 'key_not_active' });
    const tooLong = await failure(() => admin.rollKey(tenant, client.clientId, next.keyId, { gracePeriodSeconds: 2_592_001 }));
    expect(tooLong).toMatchObject({ status: 400, code: 'invalid_request' });

    // Refused before sending: a private JWK, an unknown member, a fractional grace period.
    const { requests, fetch } = answering(() => new Response(null, { status: 500 }));
    const offline = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch });
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    for (const input of [{ publicKey: privateJwk }, { graceSeconds: 60 }, { gracePeriodSeconds: 1.5 }])
      expect(await failure(() => offline.rollKey(tenant, client.clientId, next.keyId, input as never))).toBeInstanceOf(TypeError);
    expect(requests).toHaveLength(0);
  });

  it('lists audit records newest first, filtered, and across pages', async () => {
    const tenant = newTenant();
    const client = await admin.createClient(tenant, { name: 'audited' });
    const key = await admin.createKey(tenant, client.clientId);
    await admin.updateClient(tenant, client.clientId, { name: 'renamed' });
    await waitLinked(tenant, { records: 3 }); // seq is shown once the audit function has linked a record

    const page = await admin.listAuditEvents(tenant);
    expect(page.items.map((e) => e.action)).toEqual(['client.updated', 'access_key.created', 'client.created']);
    const [latest] = page.items;
    if (!latest || latest.integrity === 'failed') throw new Error('expected a decrypted record');
    expect(latest).toMatchObject({
      tenantId: tenant,
      seq: 3,
      actor: { type: 'client', clientId: admin.identity.clientId },
      target: { clientId: client.clientId },
    });
    const keyEvents = await admin.listAuditEvents(tenant, { action: 'access_key.created' });
    expect(keyEvents.items).toMatchObject([{ action: 'access_key.created', target: { keyId: key.keyId } }]);
    expect(JSON.stringify(keyEvents)).not.toContain(secretOf(key.accessKey as string));

    const seqs: (number | undefined)[] = [];
    for await (const event of admin.iterateAuditEvents(tenant, { limit: 1 })) seqs.push(event.seq);
    expect(seqs).toEqual([3, 2, 1]);
    const future = new Date(Date.now() + 3_600_000);
    expect((await admin.listAuditEvents(tenant, { from: future })).items).toEqual([]);
    expect((await admin.listAuditEvents(tenant, { to: new Date(0).toISOString() })).items).toEqual([]);
  });

  it('throws KeysmithApiError with the status, code and field errors of a problem answer', async () => {
    const tenant = newTenant();
    const invalid = await failure(() => admin.createClient(tenant, { name: '', scopes: ['not a scope'] }));
    expect(invalid).toBeInstanceOf(KeysmithApiError);
    expect(invalid).toMatchObject({
      name: 'KeysmithApiError',
      status: 400,
      code: 'invalid_request',
      type: 'urn:keysmith:problem:invalid_request',
      title: 'Invalid request',
    });
    expect((invalid as KeysmithApiError).errors.map((e) => e.path).sort()).toEqual(['body.name', 'body.scopes.0']);

    const outsider = await app.clientWithToken(newTenant(), ['keysmith:admin']);
    const tenantAdmin = new KeysmithAdmin({
      baseUrl: app.baseUrl,
      accessKey: outsider.accessKey,
      issuerBase: ISSUER_BASE,
      audience: AUDIENCE,
    });
    const forbidden = await failure(() => tenantAdmin.listClients(tenant));
    expect(forbidden).toMatchObject({ status: 403, code: 'tenant_forbidden' });
    // Its own tenant it manages; another tenant's client under that path does not exist.
    const mine = await tenantAdmin.createClient(tenantAdmin.identity.tenantId, { name: 'mine' });
    expect(mine.tenantId).toBe(tenantAdmin.identity.tenantId);
    const elsewhere = await admin.createClient(tenant, { name: 'elsewhere' });
    expect(await failure(() => tenantAdmin.getClient(tenantAdmin.identity.tenantId, elsewhere.clientId))).toMatchObject({
      status: 404,
      code: 'client_not_found',
    });

    for (let i = 0; i < 5; i++) await admin.createKey(tenant, elsewhere.clientId);
    const full = await failure(() => admin.createKey(tenant, elsewhere.clientId));
    expect(full).toMatchObject({ status: 409, code: 'key_limit_reached' });

    for (const error of [invalid, forbidden, full]) {
      expect(String(error)).not.toContain(secretOf(app.adminAccessKey));
      expect(JSON.stringify(error)).not.toContain(secretOf(app.adminAccessKey));
      expect(inspect(error)).not.toContain(secretOf(app.adminAccessKey));
      expect(inspect(error)).not.toContain(secretOf(outsider.accessKey));
    }
  });

  it('drops the cached token after a 401, and never shows the access key or a token', async () => {
    const provider = new TokenProvider({
      accessKey: app.adminAccessKey,
      issuerBase: ISSUER_BASE,
      audience: 'https://other.test',
    });
    const invalidate = vi.spyOn(provider, 'invalidate');
    const wrong = new KeysmithAdmin({ baseUrl: app.baseUrl, tokenProvider: provider });
    const token = await provider.getToken();
    const refused = await failure(() => wrong.whoami());
    expect(refused).toMatchObject({ status: 401, code: 'unauthorized' });
    expect(invalidate).toHaveBeenCalledTimes(1);
    expect(`${String(refused)} ${JSON.stringify(refused)} ${inspect(refused)}`).not.toContain(token);

    const secret = secretOf(app.adminAccessKey);
    for (const shown of [String(admin), JSON.stringify(admin), inspect(admin), inspect(admin, { showHidden: true, depth: 9 })])
      expect(shown).not.toContain(secret);
    expect(JSON.parse(JSON.stringify(admin))).toEqual({ baseUrl: app.baseUrl, ...admin.identity });

    // A token echoed back by something on the way is cut out of the error; an answer without a code is `http_error`.
    const { fetch } = answering((init) => {
      const sent = new Headers(init?.headers).get('authorization') as string;
      return new Response(JSON.stringify({ detail: `upstream saw ${sent}` }), { status: 502, statusText: 'Bad Gateway' });
    });
    const echoed = await failure(() => new KeysmithAdmin({ baseUrl: app.baseUrl, tokenProvider: provider, fetch }).whoami());
    expect(echoed).toMatchObject({
      status: 502,
      code: 'http_error',
      title: 'Bad Gateway',
      detail: 'upstream saw Bearer [redacted]',
    });
    expect(JSON.stringify((echoed as KeysmithApiError).problem)).not.toMatch(/eyJ/);
    const bare = answering(() => new Response('<html>', { status: 502 }));
    const proxied = await failure(() =>
      new KeysmithAdmin({ baseUrl: app.baseUrl, tokenProvider: provider, fetch: bare.fetch }).whoami(),
    );
    expect(proxied).toMatchObject({ status: 502, code: 'http_error', detail: 'GET /v1/whoami failed' });
  });

  it('throws KeysmithConnectionError when the API cannot be reached or does not answer in time', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = new KeysmithAdmin({ baseUrl, accessKey: app.adminAccessKey });
    const refused = await failure(() => unreachable.listClients('acme'));
    expect(refused).toBeInstanceOf(KeysmithConnectionError);
    expect(refused).toMatchObject({ baseUrl, reason: 'ECONNREFUSED', timedOut: false });
    expect((refused as Error).message).toBe(`cannot reach ${baseUrl}: ECONNREFUSED`);
    expect(inspect(refused)).not.toContain(secretOf(app.adminAccessKey));

    const silent = (async (_input: string | URL | Request, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)),
      )) as typeof fetch;
    const slow = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: silent, timeoutMs: 50 });
    expect(await failure(() => slow.whoami())).toMatchObject({ timedOut: true, reason: 'timed out after 50 ms' });
  });

  it('encodes path segments, refuses "." and "..", and reports what is not the API', async () => {
    const { requests, fetch } = answering(() => Response.json({ items: [] }));
    const offline = new KeysmithAdmin({ baseUrl: 'https://keys.example.test/stage', accessKey: app.adminAccessKey, fetch });
    await offline.listKeys('a b', 'sc_x/../y', { limit: 5, cursor: 'c?d' });
    expect(requests[0]?.url).toBe(
      'https://keys.example.test/stage/v1/tenants/a%20b/clients/sc_x%2F..%2Fy/access-keys?limit=5&cursor=c%3Fd',
    );
    await offline.listAuditEvents('acme', { from: new Date('2026-01-01T00:00:00Z'), to: '2026-02-01T00:00:00Z' });
    expect(requests[1]?.url).toBe(
      'https://keys.example.test/stage/v1/tenants/acme/audit-events?from=2026-01-01T00%3A00%3A00.000Z&to=2026-02-01T00%3A00%3A00Z',
    );
    await expect(offline.revokeKey('acme', 'sc_x', '..')).rejects.toThrow(TypeError);
    await expect(offline.getClient('acme', '.')).rejects.toThrow(TypeError);
    expect(requests).toHaveLength(2);

    const redirected = answering(() => new Response(null, { status: 301, headers: { location: 'https://elsewhere.test/' } }));
    const moved = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: redirected.fetch });
    expect(await failure(() => moved.whoami())).toMatchObject({ status: 301, code: 'invalid_response' });
    expect(redirected.requests[0]?.init?.redirect).toBe('manual');

    const html = answering(() => new Response('<html>', { status: 200 }));
    const proxy = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: html.fetch });
    expect(await failure(() => proxy.health())).toMatchObject({ status: 200, code: 'invalid_response' });

    const tagged = answering(
      () =>
        new Response(JSON.stringify({ type: 'urn:x', title: 'Busy', status: 503, detail: 'retry', code: 'store_unavailable' }), {
          status: 503,
          headers: { 'content-type': 'application/problem+json', 'x-amzn-requestid': 'req-1' },
        }),
    );
    const busy = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: tagged.fetch });
    expect(await failure(() => busy.whoami())).toMatchObject({ status: 503, code: 'store_unavailable', requestId: 'req-1' });

    expect(() => new KeysmithAdmin({ baseUrl: 'keys.example.test', accessKey: app.adminAccessKey })).toThrow(TypeError);
    expect(() => new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, timeoutMs: 0 })).toThrow(RangeError);
  });

  it('holds against a hostile or broken endpoint: cursor cycles, huge answers, echoed tokens (security review)', async () => {
    // A server that goes A → B → A would otherwise be followed for ever.
    let calls = 0;
    const cycling = answering(() => {
      calls += 1;
      return Response.json({ items: [{ n: calls }], nextCursor: calls % 2 === 1 ? 'A' : 'B' });
    });
    const circle = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: cycling.fetch });
    const seen: unknown[] = [];
    const stopped = await failure(async () => {
      for await (const client of circle.iterateClients('acme')) seen.push(client);
    });
    expect(stopped).toMatchObject({ code: 'invalid_response', detail: expect.stringContaining('returned before') });
    expect(seen).toHaveLength(3);

    // An answer past 4 MiB is not read to the end.
    const huge = answering(() => new Response('x'.repeat(5 * 1024 * 1024), { status: 200 }));
    const flooded = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: huge.fetch });
    expect(await failure(() => flooded.health())).toMatchObject({
      code: 'invalid_response',
      detail: expect.stringContaining('longer'),
    });

    // A token echoed in the status text, the request id, or the body with JSON escapes is scrubbed all the same.
    const echo = answering((init) => {
      const token = (new Headers(init?.headers).get('authorization') as string).slice(7);
      const escaped = token.replaceAll('e', '\\u0065');
      return new Response(`{"title":"${escaped}","errors":[{"path":"x","message":"${escaped}"}],"extra":{"deep":"${token}"}}`, {
        status: 502,
        statusText: `saw ${token}`,
        headers: { 'x-request-id': `id-${token}` },
      });
    });
    const provider = new TokenProvider({ accessKey: app.adminAccessKey, issuerBase: ISSUER_BASE, audience: AUDIENCE });
    const token = await provider.getToken();
    const echoed = await failure(() =>
      new KeysmithAdmin({ baseUrl: app.baseUrl, tokenProvider: provider, fetch: echo.fetch }).whoami(),
    );
    const signature = token.split('.')[2] as string;
    const shown = `${String(echoed)} ${JSON.stringify(echoed)} ${inspect(echoed, { depth: 9 })}`;
    expect(shown).not.toContain(signature);
    expect(echoed).toMatchObject({ title: '[redacted]', requestId: 'id-[redacted]' });
    const statusOnly = answering((init) => {
      const sent = (new Headers(init?.headers).get('authorization') as string).slice(7);
      return new Response(null, { status: 502, statusText: `saw ${sent}` });
    });
    const fromStatus = await failure(() =>
      new KeysmithAdmin({ baseUrl: app.baseUrl, tokenProvider: provider, fetch: statusOnly.fetch }).whoami(),
    );
    expect(fromStatus).toMatchObject({ title: 'saw [redacted]' });

    // Nothing but the three known members leaves createKey, and a JWK is checked as it would be sent.
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const publicJwk = await exportJWK(publicKey);
    const offline = answering(() => new Response(null, { status: 500 }));
    const careful = new KeysmithAdmin({ baseUrl: app.baseUrl, accessKey: app.adminAccessKey, fetch: offline.fetch });
    for (const input of [
      { publicKey: publicJwk, privateKey: privateJwk },
      { jwk: privateJwk },
      { publicKey: { ...publicJwk, toJSON: () => privateJwk } },
    ])
      expect(await failure(() => careful.createKey('acme', 'sc_x', input as never))).toBeInstanceOf(TypeError);
    expect(offline.requests).toHaveLength(0);

    // No credentials in the URL (every error would repeat them); plain http only on loopback unless asked for.
    expect(() => new KeysmithAdmin({ baseUrl: 'https://admin:pw@keys.example.test', accessKey: app.adminAccessKey })).toThrow(
      'must not hold a user name or password',
    );
    expect(() => new KeysmithAdmin({ baseUrl: 'http://keys.example.test', accessKey: app.adminAccessKey })).toThrow('plain http');
    for (const baseUrl of ['http://localhost:3000', 'http://127.0.0.1:3000', 'http://[::1]:3000'])
      expect(new KeysmithAdmin({ baseUrl, accessKey: app.adminAccessKey }).baseUrl).toBe(baseUrl);
    expect(
      new KeysmithAdmin({ baseUrl: 'http://keys.internal', accessKey: app.adminAccessKey, allowInsecureHttp: true }).baseUrl,
    ).toBe('http://keys.internal');
  });
});
