/**
 * The token endpoint's core on DynamoDB Local (contract §9): both grants, every assertion rule with its RFC 6749
 * error, single-use jti under concurrency, and a key revoked or client disabled a moment ago getting no token.
 */
import { generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { decodeJwt, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAccessKey } from '#shared/access-key.ts';
import { AccessTokenVerifier } from '#shared/access-token.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import {
  CLIENT_ASSERTION_TYPE,
  DynamoJtiStore,
  JWT_BEARER_GRANT,
  OAuthError,
  parseTokenRequest,
  TokenIssuer,
} from '#shared/oauth.ts';
import { LocalTokenSigner } from '#shared/token-signers.ts';
import { createStore } from '#shared/wiring.ts';
import { AUDIENCE, ISSUER_BASE, newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const signer = new LocalTokenSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
let issuer: TokenIssuer;
beforeAll(() => {
  issuer = new TokenIssuer({
    store: createStore(app.config),
    jti: new DynamoJtiStore(createDocumentClient(), app.config.tables.main),
    signer,
    issuerBase: ISSUER_BASE,
    audiences: [AUDIENCE, ISSUER_BASE],
    accessTokenSeconds: 300,
    clockSkewSeconds: 60,
  });
});

interface Caller {
  clientId: string;
  keyId: string;
  tenantId: string;
  privateKey: KeyObject;
  accessKey: string;
}

async function caller(scopes = ['invoices:read', 'invoices:write'], algorithm = 'EdDSA'): Promise<Caller> {
  const tenantId = newTenant();
  const client = await app.createClient(tenantId, { scopes });
  const key = await app.createKey(tenantId, client.clientId, { algorithm });
  const { privateKey } = parseAccessKey(key.accessKey);
  return { clientId: client.clientId, keyId: key.keyId, tenantId, privateKey, accessKey: key.accessKey };
}

/** An assertion as an OAuth library writes it (jose 6: alg Ed25519 for an Ed25519 key; iss the bare clientId). */
async function assertion(
  who: Caller,
  {
    claims = {},
    header = {},
    lifetime = 60,
  }: { claims?: Record<string, unknown>; header?: Record<string, unknown>; lifetime?: number } = {},
): Promise<string> {
  const alg =
    who.privateKey.asymmetricKeyType === 'ed25519' ? 'Ed25519' : who.privateKey.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: who.clientId,
    sub: who.clientId,
    aud: ISSUER_BASE,
    jti: randomUUID(),
    iat: now,
    exp: now + lifetime,
    ...claims,
  })
    .setProtectedHeader({ alg, kid: who.keyId, ...header })
    .sign(who.privateKey);
}

const form = (parameters: Record<string, string>) => new URLSearchParams(parameters).toString();
const clientCredentials = (jwt: string, extra: Record<string, string> = {}) =>
  form({ grant_type: 'client_credentials', client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: jwt, ...extra });

/** The request's answer: the token response, or the OAuth error as `{ status, error }`. */
async function request(body: string, contentType = 'application/x-www-form-urlencoded', authorization?: string) {
  try {
    return await issuer.token(parseTokenRequest(contentType, body), authorization);
  } catch (error) {
    if (error instanceof OAuthError) return { status: error.status, error: error.error, description: error.description };
    throw error;
  }
}

const verifier = new AccessTokenVerifier({ issuerBase: ISSUER_BASE, audiences: [AUDIENCE, ISSUER_BASE] });
async function verified(accessToken: string) {
  const { kid, publicKey } = await signer.key();
  return verifier.verify(accessToken, new Map([[kid, publicKey]]));
}

describe('the token endpoint', () => {
  it('grants client_credentials with private_key_jwt and jwt-bearer, for the requested scopes and resource', async () => {
    const who = await caller();
    const granted = await request(clientCredentials(await assertion(who), { client_id: who.clientId, scope: 'invoices:read' }));
    expect(granted).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'invoices:read' });
    const first = await verified((granted as { access_token: string }).access_token);
    expect(first).toMatchObject({
      identity: { clientId: who.clientId, tenantId: who.tenantId, keyId: who.keyId, scopes: ['invoices:read'] },
      audience: AUDIENCE,
    });

    const bearer = await request(form({ grant_type: JWT_BEARER_GRANT, assertion: await assertion(who), resource: ISSUER_BASE }));
    expect(bearer).toMatchObject({ scope: 'invoices:read invoices:write' });
    expect((await verified((bearer as { access_token: string }).access_token)).audience).toBe(ISSUER_BASE);

    // The full issuer form of iss, an array aud holding only the issuer base, ES256 and RS256 keys.
    for (const algorithm of ['ES256', 'RS256']) {
      const other = await caller(['a'], algorithm);
      const jwt = await assertion(other, { claims: { iss: `${ISSUER_BASE}/v1/clients/${other.clientId}`, aud: [ISSUER_BASE] } });
      expect(await request(clientCredentials(jwt)), algorithm).toMatchObject({ scope: 'a' });
    }
  });

  it('never issues an access token that outlives its key: a rolled key’s grace end caps exp (security review of #13)', async () => {
    const who = await caller();
    const rolled = await app.call('POST', `/v1/tenants/${who.tenantId}/clients/${who.clientId}/access-keys/${who.keyId}/roll`, {
      token: app.adminToken,
      body: { gracePeriodSeconds: 100 },
    });
    expect(rolled.status).toBe(201);
    const granted = (await request(clientCredentials(await assertion(who)))) as { access_token: string; expires_in: number };
    expect(granted.expires_in).toBeGreaterThan(90);
    expect(granted.expires_in).toBeLessThanOrEqual(100);
    const claims = decodeJwt(granted.access_token);
    expect((claims.exp as number) - (claims.iat as number)).toBe(granted.expires_in);
  });

  it('refuses every assertion attack with invalid_client (client_credentials) or invalid_grant (jwt-bearer)', async () => {
    const who = await caller();
    const foreign = generateKeyPairSync('ed25519').privateKey;
    const now = Math.floor(Date.now() / 1000);
    const attacks: [string, Promise<string> | string][] = [
      ['jti missing', assertion(who, { claims: { jti: undefined } })],
      ['jti a lone surrogate', assertion(who, { claims: { jti: '\ud800' } })],
      ['aud the token endpoint', assertion(who, { claims: { aud: `${ISSUER_BASE}/v1/oauth/token` } })],
      ['aud another audience', assertion(who, { claims: { aud: AUDIENCE } })],
      ['aud an array of two', assertion(who, { claims: { aud: [ISSUER_BASE, AUDIENCE] } })],
      ['lifetime over 300 s', assertion(who, { lifetime: 301 })],
      ['expired', assertion(who, { claims: { iat: now - 400, exp: now - 100 } })],
      [
        'alg none',
        `${Buffer.from(JSON.stringify({ alg: 'none', kid: who.keyId })).toString('base64url')}.${(await assertion(who)).split('.')[1]}.`,
      ],
      ['a foreign key under the right kid', assertion({ ...who, privateKey: foreign })],
      [
        'another client in iss',
        assertion(who, { claims: { iss: 'sc_AAAAAAAAAAAAAAAAAAAAAA', sub: 'sc_AAAAAAAAAAAAAAAAAAAAAA' } }),
      ],
      ['iss another deployment', assertion(who, { claims: { iss: `https://evil.example/v1/clients/${who.clientId}` } })],
    ];
    for (const [what, jwt] of attacks) {
      expect(await request(clientCredentials(await jwt)), what).toMatchObject({ status: 401, error: 'invalid_client' });
      expect(await request(form({ grant_type: JWT_BEARER_GRANT, assertion: await jwt })), what).toMatchObject({
        status: 400,
        error: 'invalid_grant',
      });
    }
    // HS256 with the public key as the secret: refused by alg before any key is used.
    const hs = await new SignJWT({ iss: who.clientId, sub: who.clientId, aud: ISSUER_BASE, jti: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: who.keyId })
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode(who.accessKey.split('.')[3]));
    expect(await request(clientCredentials(hs))).toMatchObject({
      status: 401,
      error: 'invalid_client',
      description: expect.stringContaining('alg'),
    });

    // client_id naming another client, and client secrets in either place.
    expect(await request(clientCredentials(await assertion(who), { client_id: 'sc_AAAAAAAAAAAAAAAAAAAAAA' }))).toMatchObject({
      status: 401,
      error: 'invalid_client',
    });
    expect(await request(clientCredentials(await assertion(who), { client_secret: 's3cret' }))).toMatchObject({
      status: 401,
      error: 'invalid_client',
    });
    expect(await request(clientCredentials(await assertion(who)), undefined, 'Basic c2M6czNjcmV0')).toMatchObject({
      status: 401,
      error: 'invalid_client',
    });
  });

  it('uses a jti once, even when the same assertion arrives ten times at once', async () => {
    const who = await caller();
    const jwt = await assertion(who);
    const answers = await Promise.all(Array.from({ length: 10 }, () => request(clientCredentials(jwt))));
    expect(answers.filter((a) => 'access_token' in a)).toHaveLength(1);
    expect(answers.filter((a) => 'error' in a && a.error === 'invalid_client')).toHaveLength(9);
    expect(await request(clientCredentials(jwt))).toMatchObject({
      status: 401,
      description: expect.stringContaining('used before'),
    });
    // A jti burned by an unsigned copy would be a denial of service: the forgery records nothing.
    const fresh = await assertion(who);
    const [h, p] = fresh.split('.');
    expect(await request(clientCredentials(`${h}.${p}.${'A'.repeat(86)}`))).toMatchObject({ error: 'invalid_client' });
    expect(await request(clientCredentials(fresh))).toHaveProperty('access_token');
  });

  it('gives no token for a key revoked, a client disabled or deleted a moment ago', async () => {
    const revoked = await caller();
    await app.call('DELETE', `/v1/tenants/${revoked.tenantId}/clients/${revoked.clientId}/access-keys/${revoked.keyId}`, {
      token: app.adminToken,
    });
    expect(await request(clientCredentials(await assertion(revoked)))).toMatchObject({ status: 401, error: 'invalid_client' });

    const disabled = await caller();
    await app.call('PATCH', `/v1/tenants/${disabled.tenantId}/clients/${disabled.clientId}`, {
      token: app.adminToken,
      body: { enabled: false },
    });
    expect(await request(clientCredentials(await assertion(disabled)))).toMatchObject({ status: 401, error: 'invalid_client' });

    const deleted = await caller();
    await app.call('DELETE', `/v1/tenants/${deleted.tenantId}/clients/${deleted.clientId}`, { token: app.adminToken });
    expect(await request(clientCredentials(await assertion(deleted)))).toMatchObject({ status: 401, error: 'invalid_client' });
  });

  it('answers protocol errors with their exact codes', async () => {
    const who = await caller();
    const jwt = await assertion(who);
    const cases: [string, string, string, number][] = [
      ['a JSON body', JSON.stringify({ grant_type: 'client_credentials' }), 'application/json', 400],
      ['no grant_type', form({ client_assertion: jwt }), 'invalid_request', 400],
      ['a repeated parameter', `${clientCredentials(jwt)}&scope=a&scope=b`, 'invalid_request', 400],
      ['another grant', form({ grant_type: 'password', username: 'u', password: 'p' }), 'unsupported_grant_type', 400],
      ['no client_assertion_type', form({ grant_type: 'client_credentials', client_assertion: jwt }), 'invalid_request', 400],
      ['no assertion', form({ grant_type: JWT_BEARER_GRANT }), 'invalid_request', 400],
      ['a scope the client lacks', clientCredentials(jwt, { scope: 'keysmith:platform-admin' }), 'invalid_scope', 400],
      ['an unknown resource', clientCredentials(jwt, { resource: 'https://elsewhere.example' }), 'invalid_target', 400],
    ];
    for (const [what, body, error, status] of cases) {
      const answer = await request(body, error === 'application/json' ? 'application/json' : undefined);
      expect(answer, what).toMatchObject({ status, error: error === 'application/json' ? 'invalid_request' : error });
    }
  });

  it('never puts a keysmith: scope in an access token', async () => {
    const admin = await caller(['keysmith:admin', 'invoices:read']);
    // All the client's scopes, by default: its application scopes only.
    expect(await request(clientCredentials(await assertion(admin)))).toMatchObject({ scope: 'invoices:read' });
    for (const [what, body] of [
      ['scope parameter', clientCredentials(await assertion(admin), { scope: 'keysmith:admin invoices:read' })],
      ['scope claim', clientCredentials(await assertion(admin, { claims: { scope: 'keysmith:admin' } }))],
    ] as const)
      expect(await request(body), what).toMatchObject({
        status: 400,
        error: 'invalid_scope',
        description: expect.stringContaining('client token'),
      });
  });

  it('refuses scopes that would not fit in 8 KiB before it spends the jti', async () => {
    const many = Array.from({ length: 50 }, (_, i) => `${String(i).padStart(2, '0')}:${'s'.repeat(200)}`);
    const who = await caller(many);
    const jwt = await assertion(who);
    expect(await request(clientCredentials(jwt))).toMatchObject({ status: 400, error: 'invalid_scope' });
    const fewer = await request(clientCredentials(jwt, { scope: many.slice(0, 5).join(' ') }));
    expect((fewer as { scope: string }).scope.split(' ')).toHaveLength(5);
  });

  it('refuses a client_assertion on the jwt-bearer grant, and a scope that is not scope-tokens', async () => {
    const who = await caller();
    const jwt = await assertion(who);
    expect(
      await request(form({ grant_type: JWT_BEARER_GRANT, assertion: jwt, client_assertion_type: CLIENT_ASSERTION_TYPE })),
    ).toMatchObject({ status: 400, error: 'invalid_request' });
    expect(await request(clientCredentials(jwt, { scope: 'invoices:read "quoted"' }))).toMatchObject({
      status: 400,
      error: 'invalid_scope',
    });
    expect(await request(clientCredentials(jwt, { scope: 'a'.repeat(5000) }))).toMatchObject({ error: 'invalid_scope' });
  });
});
