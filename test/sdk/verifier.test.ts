/**
 * The SDK's token provider and verifier against the local stack: the authorizer, jose and aws-jwt-verify all
 * accept an SDK token and all refuse it once its key is revoked and their caches expire; the verifier refuses
 * an attack corpus.
 */
// The authorizer and the discovery routes read this when startTestApp loads the handlers.
process.env.KEYSMITH_REVOCATION_SECONDS = '1';

import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { JwtVerifier } from 'aws-jwt-verify';
import type { Fetcher } from 'aws-jwt-verify/https';
import { type JwksCache, SimpleJwksCache } from 'aws-jwt-verify/jwk';
import { createRemoteJWKSet, customFetch, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthorizedFetch } from '#sdk/fetch.ts';
import { TokenProvider } from '#sdk/token-provider.ts';
import { ClientTokenVerifier, KeyDiscoveryError, TokenRejectedError } from '#sdk/verifier.ts';
import { parseAccessKey } from '#shared/access-key.ts';
import { AUDIENCE, ISSUER_BASE, newTenant, startTestApp, type TestApp } from '../support/app.ts';
import { forgeForSmallOrderKey, smallOrderJwk } from '../support/weak-keys.ts';

let app: TestApp;
/** fetch that reaches the issuer's URLs (http://keysmith.test/...) at the test server, recording each URL. */
const fetched: string[] = [];
const issuerFetch: typeof fetch = (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  fetched.push(url);
  if (!url.startsWith(`${ISSUER_BASE}/`)) throw new Error(`refusing to fetch ${url}`);
  return fetch(`${app.baseUrl}${url.slice(ISSUER_BASE.length)}`, init);
};

beforeAll(async () => {
  app = await startTestApp();
});
afterAll(() => app.close());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** aws-jwt-verify's fetcher, over our issuer-mapping fetch (its own fetches over https only). */
const awsFetcher: Fetcher = {
  async fetch(uri) {
    const response = await issuerFetch(uri);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.arrayBuffer();
  },
};

/** A SimpleJwksCache that forgets everything after `ttlMs`, so revocation shows within a bound. */
class ExpiringJwksCache implements JwksCache {
  private inner = new SimpleJwksCache({ fetcher: awsFetcher });
  private createdAt = Date.now();
  constructor(private readonly ttlMs: number) {}
  private current(): SimpleJwksCache {
    if (Date.now() - this.createdAt >= this.ttlMs) {
      this.inner = new SimpleJwksCache({ fetcher: awsFetcher });
      this.createdAt = Date.now();
    }
    return this.inner;
  }
  getJwk(...args: Parameters<JwksCache['getJwk']>) {
    return this.current().getJwk(...args);
  }
  getCachedJwk(...args: Parameters<JwksCache['getCachedJwk']>) {
    return this.current().getCachedJwk(...args);
  }
  addJwks(...args: Parameters<JwksCache['addJwks']>) {
    this.current().addJwks(...args);
  }
  getJwks(...args: Parameters<JwksCache['getJwks']>) {
    return this.current().getJwks(...args);
  }
}

describe('an SDK token, end to end', () => {
  it('passes the authorizer, jose and aws-jwt-verify and the SDK verifier, and none of them after revocation', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant, { scopes: ['invoices:read', 'invoices:write'] });
    const key = await app.createKey(tenant, client.clientId, { algorithm: 'ES256' });
    const provider = new TokenProvider({
      accessKey: key.accessKey,
      issuerBase: ISSUER_BASE,
      audience: AUDIENCE,
      scope: 'invoices:read',
    });
    const authorizedFetch = createAuthorizedFetch(provider);

    const whoami = await authorizedFetch(`${app.baseUrl}/v1/whoami`);
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toEqual({
      clientId: client.clientId,
      tenantId: tenant,
      keyId: key.keyId,
      scopes: 'invoices:read',
    });

    const token = await provider.getToken();
    const issuer = `${ISSUER_BASE}/v1/clients/${client.clientId}`;
    const configuration = (await (await issuerFetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
      jwks_uri: string;
    };
    expect(configuration.issuer).toBe(issuer);

    const joseKeys = createRemoteJWKSet(new URL(configuration.jwks_uri), {
      cacheMaxAge: 300,
      cooldownDuration: 0,
      [customFetch]: issuerFetch,
    });
    const joseResult = await jwtVerify(token, joseKeys, { issuer, audience: AUDIENCE, algorithms: ['ES256'] });
    expect(joseResult.payload.sub).toBe(client.clientId);

    const awsVerifier = JwtVerifier.create(
      { issuer, audience: AUDIENCE, jwksUri: configuration.jwks_uri },
      { jwksCache: new ExpiringJwksCache(300) },
    );
    expect((await awsVerifier.verify(token)).sub).toBe(client.clientId);

    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: [AUDIENCE],
      cacheSeconds: 0.3,
      fetch: issuerFetch,
    });
    expect(await verifier.verifyAuthorization(`Bearer ${token}`)).toEqual({
      clientId: client.clientId,
      keyId: key.keyId,
      claimedScopes: ['invoices:read'],
      claims: expect.objectContaining({ iss: issuer, sub: client.clientId, aud: AUDIENCE }),
    });

    const revoked = await app.call('DELETE', `/v1/tenants/${tenant}/clients/${client.clientId}/access-keys/${key.keyId}`, {
      token: app.adminToken,
    });
    expect(revoked.status).toBe(204);
    await sleep(1_200); // past every cache: the authorizer's revocation bound (1 s here) and the 0.3 s JWKS caches

    expect((await authorizedFetch(`${app.baseUrl}/v1/whoami`)).status).toBe(401);
    await expect(jwtVerify(token, joseKeys, { issuer, audience: AUDIENCE })).rejects.toThrow(/no applicable key/i);
    await expect(awsVerifier.verify(token)).rejects.toThrow(/kid/i);
    await expect(verifier.verify(token)).rejects.toMatchObject({ name: 'TokenRejectedError', reason: 'unknown_key' });
  });

  it('works for every algorithm, with one discovery fetch shared by concurrent verifications', async () => {
    const tenant = newTenant();
    for (const algorithm of ['EdDSA', 'ES256', 'RS256'] as const) {
      const client = await app.createClient(tenant);
      const key = await app.createKey(tenant, client.clientId, { algorithm });
      const token = await app.token(key.accessKey);
      fetched.length = 0;
      const verifier = new ClientTokenVerifier({ issuerBase: ISSUER_BASE, audiences: AUDIENCE, fetch: issuerFetch });
      const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)));
      expect(results.every((r) => r.clientId === client.clientId && r.keyId === key.keyId)).toBe(true);
      expect(results[0]?.claimedScopes).toEqual([]); // no scope claim: the client's scopes are not known here
      expect(fetched).toEqual([
        `${ISSUER_BASE}/v1/clients/${client.clientId}/.well-known/openid-configuration`,
        `${ISSUER_BASE}/v1/clients/${client.clientId}/.well-known/openid-configuration/jwks`,
      ]);
    }
  });

  it('accepts a token jose signs under the RFC 9864 name Ed25519, in the SDK verifier and the authorizer', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const key = await app.createKey(tenant, client.clientId);
    const { privateKey } = parseAccessKey(key.accessKey);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'Ed25519', kid: key.keyId, typ: 'JWT' })
      .setIssuer(`${ISSUER_BASE}/v1/clients/${client.clientId}`)
      .setSubject(client.clientId)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    expect(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()).alg).toBe('Ed25519');
    const verifier = new ClientTokenVerifier({ issuerBase: ISSUER_BASE, audiences: AUDIENCE, fetch: issuerFetch });
    expect(await verifier.verify(token)).toMatchObject({ clientId: client.clientId, keyId: key.keyId });
    const whoami = await app.call('GET', '/v1/whoami', { token });
    expect(whoami.status).toBe(200);
    expect(whoami.body).toMatchObject({ clientId: client.clientId, keyId: key.keyId });
  });

  it('keeps at most maxCachedClients clients', async () => {
    const tenant = newTenant();
    const a = await app.clientWithToken(tenant);
    const b = await app.clientWithToken(tenant);
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      maxCachedClients: 1,
      fetch: issuerFetch,
    });
    fetched.length = 0;
    await verifier.verify(a.token);
    await verifier.verify(a.token);
    expect(fetched).toHaveLength(2);
    await verifier.verify(b.token);
    await verifier.verify(a.token); // a was dropped for b
    expect(fetched).toHaveLength(6);
  });
});

/** Signs a compact JWS with any header, payload and key (the attacker's tool: no library rules). */
function rawJws(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: KeyObject | undefined,
  alg = header.alg,
): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${encode(header)}.${encode(payload)}`;
  let signature = Buffer.alloc(0);
  if (key && alg === 'EdDSA') signature = sign(null, Buffer.from(input), key);
  if (key && alg === 'ES256') signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  if (key && alg === 'RS256') signature = sign('sha256', Buffer.from(input), key);
  return `${input}.${signature.toString('base64url')}`;
}

/** A verifier whose discovery answers honestly for `issuer` and serves `keys` as its JWKS. */
const verifierServing = (issuer: string, keys: unknown[]) =>
  new ClientTokenVerifier({
    issuerBase: ISSUER_BASE,
    audiences: AUDIENCE,
    fetch: async (input) =>
      String(input).endsWith('/openid-configuration')
        ? Response.json({ issuer, jwks_uri: `${issuer}/.well-known/openid-configuration/jwks` })
        : Response.json({ keys }),
  });

describe('the SDK verifier refuses an attack corpus', () => {
  let verifier: ClientTokenVerifier;
  let victim: { clientId: string; keyId: string; key: KeyObject };
  let other: { clientId: string; keyId: string; key: KeyObject };
  let rsa: { clientId: string; keyId: string; key: KeyObject };
  const now = () => Math.floor(Date.now() / 1000);

  const loadKey = async (tenant: string, algorithm: string) => {
    const client = await app.createClient(tenant);
    const created = await app.createKey(tenant, client.clientId, { algorithm });
    const parsed = parseAccessKey(created.accessKey);
    return { clientId: client.clientId, keyId: created.keyId, key: parsed.privateKey };
  };

  beforeAll(async () => {
    verifier = new ClientTokenVerifier({ issuerBase: ISSUER_BASE, audiences: [AUDIENCE], fetch: issuerFetch });
    victim = await loadKey(newTenant(), 'EdDSA');
    other = await loadKey(newTenant(), 'EdDSA');
    rsa = await loadKey(newTenant(), 'RS256');
  });

  const claimsOf = (clientId: string, extra: Record<string, unknown> = {}) => ({
    iss: `${ISSUER_BASE}/v1/clients/${clientId}`,
    sub: clientId,
    aud: AUDIENCE,
    iat: now(),
    exp: now() + 300,
    ...extra,
  });
  const header = (kid: string, extra: Record<string, unknown> = {}) => ({ alg: 'EdDSA', kid, typ: 'JWT', ...extra });

  it('accepts the well-formed control token', async () => {
    const token = rawJws(header(victim.keyId), claimsOf(victim.clientId), victim.key);
    expect((await verifier.verify(token)).clientId).toBe(victim.clientId);
  });

  it.each([
    'alg none',
    'HS256 with the public key as secret',
    'wrong alg (ES256 signature under an EdDSA kid)',
    'RS256 kid with an EdDSA header',
    'unknown kid',
    "another client's kid",
    'jwk header with the attacker key',
    'jku header to an attacker JWKS',
    'crit',
    'expired',
    'nbf in the future',
    'iat in the future',
    'lifetime over the maximum',
    'wrong aud',
    'iss/sub mismatch',
    'issuer outside the base',
    'flipped signature bits',
    'over-long token',
    'missing exp',
    'scope that is not a string',
  ])('%s', async (attack) => {
    const attacker = generateKeyPairSync('ed25519').privateKey;
    const attackerEc = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const attackerJwk = createPublicKey(attacker).export({ format: 'jwk' });
    const good = claimsOf(victim.clientId);
    const cases: Record<string, [() => Promise<string> | string, string]> = {
      'alg none': [() => rawJws({ alg: 'none', kid: victim.keyId }, good, undefined), 'unsupported_alg'],
      'HS256 with the public key as secret': [
        () =>
          new SignJWT(claimsOf(rsa.clientId))
            .setProtectedHeader({ alg: 'HS256', kid: rsa.keyId })
            .sign(new TextEncoder().encode(createPublicKey(rsa.key).export({ format: 'pem', type: 'spki' }) as string)),
        'unsupported_alg',
      ],
      'wrong alg (ES256 signature under an EdDSA kid)': [
        () => rawJws(header(victim.keyId, { alg: 'ES256' }), good, attackerEc),
        'algorithm_mismatch',
      ],
      'RS256 kid with an EdDSA header': [() => rawJws(header(rsa.keyId), claimsOf(rsa.clientId), attacker), 'algorithm_mismatch'],
      'unknown kid': [() => rawJws(header('Zz9Zz9Zz9Zz9'), good, victim.key), 'unknown_key'],
      "another client's kid": [() => rawJws(header(other.keyId), good, other.key), 'unknown_key'],
      'jwk header with the attacker key': [
        () => rawJws(header(victim.keyId, { jwk: attackerJwk }), good, attacker),
        'invalid_signature',
      ],
      'jku header to an attacker JWKS': [
        () =>
          rawJws(
            header(victim.keyId, { jku: 'https://attacker.example/jwks.json', x5u: 'https://attacker.example/x' }),
            good,
            attacker,
          ),
        'invalid_signature',
      ],
      crit: [() => rawJws(header(victim.keyId, { crit: ['exp'] }), good, victim.key), 'crit_not_supported'],
      expired: [
        () => rawJws(header(victim.keyId), { ...good, iat: now() - 1000, exp: now() - 500 }, victim.key),
        'token_expired',
      ],
      'nbf in the future': [() => rawJws(header(victim.keyId), { ...good, nbf: now() + 600 }, victim.key), 'token_not_yet_valid'],
      'iat in the future': [
        () => rawJws(header(victim.keyId), { ...good, iat: now() + 600, exp: now() + 900 }, victim.key),
        'issued_in_future',
      ],
      'lifetime over the maximum': [
        () => rawJws(header(victim.keyId), { ...good, exp: now() + 86_401 }, victim.key),
        'lifetime_too_long',
      ],
      'wrong aud': [
        () => rawJws(header(victim.keyId), { ...good, aud: 'https://elsewhere.example' }, victim.key),
        'invalid_audience',
      ],
      'iss/sub mismatch': [() => rawJws(header(victim.keyId), { ...good, sub: other.clientId }, victim.key), 'subject_mismatch'],
      'issuer outside the base': [
        () => rawJws(header(victim.keyId), { ...good, iss: `https://evil.example/v1/clients/${victim.clientId}` }, victim.key),
        'invalid_issuer',
      ],
      'flipped signature bits': [
        () => {
          const [h, p, s] = rawJws(header(victim.keyId), good, victim.key).split('.') as [string, string, string];
          const signature = Buffer.from(s, 'base64url');
          signature[10] = (signature[10] ?? 0) ^ 0x01;
          return `${h}.${p}.${signature.toString('base64url')}`;
        },
        'invalid_signature',
      ],
      'over-long token': [() => rawJws(header(victim.keyId), { ...good, pad: 'x'.repeat(8200) }, victim.key), 'token_too_large'],
      'missing exp': [() => rawJws(header(victim.keyId), { ...good, exp: undefined }, victim.key), 'missing_claim'],
      'scope that is not a string': [() => rawJws(header(victim.keyId), { ...good, scope: ['a'] }, victim.key), 'invalid_claim'],
    };
    const [make, reason] = cases[attack] as [() => Promise<string> | string, string];
    const token = await make();
    fetched.length = 0;
    const error = await verifier.verify(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenRejectedError);
    expect((error as TokenRejectedError).reason).toBe(reason);
    expect((error as Error).message).not.toContain(token.slice(0, 40));
    expect(fetched.every((url) => url.startsWith(`${ISSUER_BASE}/v1/clients/`))).toBe(true);
  });

  it('refuses an unknown client and a missing bearer token', async () => {
    const ghost = 'sc_0000000000000000000000';
    await expect(verifier.verify(rawJws(header(victim.keyId), claimsOf(ghost), victim.key))).rejects.toMatchObject({
      reason: 'unknown_client',
    });
    await expect(verifier.verifyAuthorization(undefined)).rejects.toMatchObject({ reason: 'missing_token' });
    await expect(verifier.verifyAuthorization('Basic abc')).rejects.toMatchObject({ reason: 'missing_token' });
  });

  it('refuses a discovery document naming another issuer, or a jwks_uri outside the base, or a redirect', async () => {
    const token = rawJws(header(victim.keyId), claimsOf(victim.clientId), victim.key);
    const issuer = `${ISSUER_BASE}/v1/clients/${victim.clientId}`;
    const serve =
      (configuration: Record<string, unknown>): typeof fetch =>
      async (input) =>
        String(input).endsWith('/openid-configuration')
          ? Response.json(configuration)
          : Response.json({
              keys: [{ ...createPublicKey(victim.key).export({ format: 'jwk' }), kid: victim.keyId, alg: 'EdDSA' }],
            });
    const attempts: [typeof fetch, RegExp][] = [
      [
        serve({
          issuer: `${ISSUER_BASE}/v1/clients/${other.clientId}`,
          jwks_uri: `${issuer}/.well-known/openid-configuration/jwks`,
        }),
        /another issuer/,
      ],
      [serve({ issuer, jwks_uri: 'https://attacker.example/jwks.json' }), /not under the issuer base/],
      [serve({ issuer, jwks_uri: 'http://keysmith.test.attacker.example/jwks' }), /not under the issuer base/],
      [async () => new Response(null, { status: 302, headers: { location: 'https://attacker.example/' } }), /HTTP 302|failed/],
      [async () => new Response('oops', { status: 500 }), /HTTP 500/],
    ];
    for (const [stub, message] of attempts) {
      const stubbed = new ClientTokenVerifier({ issuerBase: ISSUER_BASE, audiences: AUDIENCE, fetch: stub });
      const error = await stubbed.verify(token).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KeyDiscoveryError);
      expect((error as Error).message).toMatch(message);
    }
    // The same JWKS served honestly is accepted, so the refusals above are about the document, not the key.
    const honest = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      fetch: serve({ issuer, jwks_uri: `${issuer}/.well-known/openid-configuration/jwks` }),
    });
    expect((await honest.verify(token)).clientId).toBe(victim.clientId);
  });

  it('ignores JWKS entries whose alg does not match their key, or that hold private members', async () => {
    const token = rawJws(header(victim.keyId), claimsOf(victim.clientId), victim.key);
    const issuer = `${ISSUER_BASE}/v1/clients/${victim.clientId}`;
    const publicJwk = createPublicKey(victim.key).export({ format: 'jwk' });
    const privateJwk = victim.key.export({ format: 'jwk' });
    for (const entry of [
      { ...publicJwk, kid: victim.keyId, alg: 'ES256' },
      { ...privateJwk, kid: victim.keyId, alg: 'EdDSA' },
      { ...publicJwk, kid: victim.keyId, alg: 'EdDSA', use: 'enc' },
    ]) {
      await expect(verifierServing(issuer, [entry]).verify(token)).rejects.toMatchObject({ reason: 'unknown_key' });
    }
  });

  it('ignores a small-order Ed25519 key in a JWKS, so a signature forged for it is refused', async () => {
    const issuer = `${ISSUER_BASE}/v1/clients/${victim.clientId}`;
    const weakJwk = { ...smallOrderJwk(), kid: victim.keyId, alg: 'EdDSA' };
    const forged = forgeForSmallOrderKey((jti) =>
      rawJws(header(victim.keyId), { ...claimsOf(victim.clientId), jti: String(jti) }, undefined)
        .split('.')
        .slice(0, 2)
        .join('.'),
    );
    expect(forged, 'node:crypto accepts some forged signature for a small-order key').toBeDefined();
    await expect(verifierServing(issuer, [weakJwk]).verify(forged as string)).rejects.toMatchObject({ reason: 'unknown_key' });
  });
});
