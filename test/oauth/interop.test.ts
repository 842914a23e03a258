/**
 * The token issuer over HTTP, through the local server's handlers and authorizer, with independent libraries on the
 * other side (issue 11): panva's openid-client obtains an access token with private_key_jwt from the discovered
 * token endpoint (its assertions name alg Ed25519 and iss the bare clientId); jose's createRemoteJWKSet, from the
 * discovered jwks_uri, and aws-jwt-verify's JwtVerifier verify it; Keysmith's own authorizer accepts it at
 * /v1/whoami. Every answer is checked against the OpenAPI document.
 */
import { randomUUID, webcrypto } from 'node:crypto';
import { JwtVerifier } from 'aws-jwt-verify';
import { createRemoteJWKSet, customFetch as joseFetch, jwtVerify, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { describe, expect, it } from 'vitest';
import { TokenEndpointError } from '#sdk/access-token.ts';
import { AccessTokenRejectedError, AccessTokenVerifier } from '#sdk/access-token-verifier.ts';
import { TokenProvider } from '#sdk/token-provider.ts';
import { parseAccessKey } from '#shared/access-key.ts';
import { CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT } from '#shared/oauth.ts';
import { AUDIENCE, ISSUER_BASE, newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

/** The issuer base is a name (http://keysmith.test): requests to it go to the test server, checked like app.call's. */
const rewrite = (url: string | URL) => String(url).replace(ISSUER_BASE, '');
const toServer = (url: string | URL, init?: RequestInit) => app.fetch(rewrite(url), init);

async function client(scopes = ['invoices:read', 'invoices:write']) {
  const tenantId = newTenant();
  const created = await app.createClient(tenantId, { scopes });
  const key = await app.createKey(tenantId, created.clientId, {});
  const der = parseAccessKey(key.accessKey).privateKey.export({ format: 'der', type: 'pkcs8' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']);
  return { tenantId, clientId: created.clientId as string, keyId: key.keyId as string, cryptoKey, accessKey: key.accessKey };
}

describe('the token issuer with independent OAuth and JWT libraries', () => {
  it('publishes its metadata under both names and its signing key', async () => {
    const openid = await app.call('GET', '/.well-known/openid-configuration');
    const rfc8414 = await app.call('GET', '/.well-known/oauth-authorization-server');
    expect(openid.status).toBe(200);
    expect(rfc8414.body).toEqual(openid.body);
    expect(openid.body).toMatchObject({
      issuer: ISSUER_BASE,
      token_endpoint: `${ISSUER_BASE}/v1/oauth/token`,
      jwks_uri: `${ISSUER_BASE}/.well-known/jwks.json`,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      grant_types_supported: ['client_credentials', JWT_BEARER_GRANT],
    });
    const jwks = await app.call('GET', '/.well-known/jwks.json');
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: expect.stringMatching(/^[\w-]{43}$/) });
  });

  it('gives openid-client a token with private_key_jwt that jose, aws-jwt-verify and the authorizer all verify', async () => {
    const who = await client();
    const config = await oidc.discovery(
      new URL(ISSUER_BASE),
      who.clientId,
      undefined,
      oidc.PrivateKeyJwt({ key: who.cryptoKey, kid: who.keyId }),
      { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: toServer },
    );
    config[oidc.customFetch] = toServer;
    const granted = await oidc.clientCredentialsGrant(config, { scope: 'invoices:read', resource: AUDIENCE });
    expect(granted).toMatchObject({ token_type: 'bearer', expires_in: 300, scope: 'invoices:read' });
    const accessToken = granted.access_token;

    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri as string), { [joseFetch]: toServer });
    const { payload, protectedHeader } = await jwtVerify(accessToken, jwks, {
      issuer: ISSUER_BASE,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['RS256'],
    });
    expect(protectedHeader).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(payload).toMatchObject({
      sub: who.clientId,
      client_id: who.clientId,
      tenant_id: who.tenantId,
      key_id: who.keyId,
      scope: 'invoices:read',
    });

    const verifier = JwtVerifier.create({
      issuer: ISSUER_BASE,
      audience: AUDIENCE,
      jwksUri: config.serverMetadata().jwks_uri as string,
      scope: 'invoices:read',
    });
    verifier.cacheJwks((await app.call('GET', '/.well-known/jwks.json')).body);
    expect(await verifier.verify(accessToken)).toMatchObject({ sub: who.clientId, tenant_id: who.tenantId });

    // The SDK's sibling of ClientTokenVerifier: the granted scopes and the tenant, from the JWKS alone.
    const sdk = new AccessTokenVerifier({ issuerBase: ISSUER_BASE, audiences: [AUDIENCE], fetch: toServer as typeof fetch });
    expect(await sdk.verify(accessToken)).toEqual({
      clientId: who.clientId,
      tenantId: who.tenantId,
      keyId: who.keyId,
      scopes: ['invoices:read'],
      audience: AUDIENCE,
      expiresAt: payload.exp,
    });
    const elsewhere = new AccessTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: ['https://other.example'],
      fetch: toServer as typeof fetch,
    });
    await expect(elsewhere.verify(accessToken)).rejects.toBeInstanceOf(AccessTokenRejectedError);

    const whoami = await app.call('GET', '/v1/whoami', { token: accessToken });
    expect(whoami).toMatchObject({
      status: 200,
      body: { clientId: who.clientId, tenantId: who.tenantId, keyId: who.keyId, scopes: 'invoices:read' },
    });
    // Tampered: refused by the authorizer like any bad token.
    const [h, p, s] = accessToken.split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload, scope: 'invoices:write' })).toString('base64url');
    expect((await app.call('GET', '/v1/whoami', { token: `${h}.${forged}.${s}` })).status).toBe(401);
    await expect(sdk.verify(`${h}.${forged}.${s}`)).rejects.toMatchObject({ reason: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    expect(p).not.toBe(forged);

    // A second grant signs a fresh assertion (a new jti); asking for no scope gets all the client's.
    expect((await oidc.clientCredentialsGrant(config)).scope).toBe('invoices:read invoices:write');
  });

  it('grants the jwt-bearer grant over HTTP and answers protocol errors in RFC 6749 JSON, never cached', async () => {
    const who = await client();
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: 'invoices:write' })
      .setProtectedHeader({ alg: 'Ed25519', kid: who.keyId })
      .setIssuer(who.clientId)
      .setSubject(who.clientId)
      .setAudience(ISSUER_BASE)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(who.cryptoKey);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const granted = await app.call('POST', '/v1/oauth/token', {
      headers: form,
      rawBody: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
    });
    expect(granted.status).toBe(200);
    expect(granted.headers.get('cache-control')).toBe('no-store');
    expect(granted.body.scope).toBe('invoices:write');

    const replay = await app.call('POST', '/v1/oauth/token', {
      headers: form,
      rawBody: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
    });
    expect(replay).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });

    // A repeated query parameter too, which API Gateway's event would carry twice.
    const twice = await app.call('POST', '/v1/oauth/token?a=1&a=2', { headers: form, rawBody: 'grant_type=client_credentials' });
    expect(twice).toMatchObject({ status: 400, body: { error: 'invalid_request' } });

    const cases: [string, Parameters<TestApp['call']>[2], number, string][] = [
      ['a JSON body', { body: { grant_type: 'client_credentials' } }, 400, 'invalid_request'],
      ['no body', { headers: form }, 400, 'invalid_request'],
      ['parameters in the query', { headers: form, rawBody: 'grant_type=client_credentials' }, 400, 'invalid_request'],
      ['another grant', { headers: form, rawBody: 'grant_type=password&username=u&password=p' }, 400, 'unsupported_grant_type'],
      [
        'a bad client assertion',
        {
          headers: form,
          rawBody: new URLSearchParams({
            grant_type: 'client_credentials',
            client_assertion_type: CLIENT_ASSERTION_TYPE,
            client_assertion: 'a.b.c',
          }).toString(),
        },
        401,
        'invalid_client',
      ],
      [
        'a body over 16 KiB',
        { headers: form, rawBody: `grant_type=client_credentials&x=${'a'.repeat(17_000)}` },
        400,
        'invalid_request',
      ],
    ];
    for (const [what, options, status, error] of cases) {
      const path = what === 'parameters in the query' ? '/v1/oauth/token?client_assertion=x' : '/v1/oauth/token';
      const answer = await app.call('POST', path, options);
      expect(answer.status, what).toBe(status);
      expect(answer.body.error, what).toBe(error);
      expect(answer.headers.get('content-type'), what).toBe('application/json');
      expect(answer.headers.get('cache-control'), what).toBe('no-store');
    }
  });

  it("gives the SDK's TokenProvider access tokens: cached until shortly before expires_in, one request for concurrent callers", async () => {
    const who = await client();
    let requests = 0;
    // The server's clock is the real one, so this provider renews 297 s before expiry: its token is reused for 3 s.
    const provider = new TokenProvider({
      accessKey: who.accessKey,
      issuerBase: ISSUER_BASE,
      mode: 'access-token',
      audience: AUDIENCE,
      scope: 'invoices:read',
      renewBeforeSeconds: 297,
      fetch: async (url, init) => {
        requests += 1;
        return toServer(url as string, init);
      },
    });
    const [first, second] = await Promise.all([provider.getToken(), provider.getToken()]);
    expect(second).toBe(first);
    expect(requests).toBe(1);
    expect(await provider.getToken()).toBe(first);
    expect(requests).toBe(1);
    expect((await app.call('GET', '/v1/whoami', { token: first })).body).toMatchObject({
      clientId: who.clientId,
      scopes: 'invoices:read',
    });
    // Renewed once within the margin, with a fresh assertion (a new jti).
    await new Promise((resolve) => setTimeout(resolve, 3_100));
    const renewed = await provider.getToken();
    expect(requests).toBe(2);
    expect(renewed).not.toBe(first);

    // A redirect is not followed: it would hand the assertion to another host.
    const redirected = new TokenProvider({
      accessKey: who.accessKey,
      issuerBase: ISSUER_BASE,
      mode: 'access-token',
      fetch: async (_url, init) => {
        expect(init?.redirect).toBe('manual');
        return new Response(null, { status: 307, headers: { location: 'https://elsewhere.example/token' } });
      },
    });
    await expect(redirected.getToken()).rejects.toMatchObject({ status: 307, error: 'invalid_response' });

    const refusing = new TokenProvider({
      accessKey: who.accessKey,
      issuerBase: ISSUER_BASE,
      mode: 'access-token',
      scope: 'keysmith:admin',
      fetch: (url, init) => toServer(url as string, init),
    });
    const refused = await refusing.getToken().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TokenEndpointError);
    expect(refused).toMatchObject({ status: 400, error: 'invalid_scope' });
    expect(String((refused as Error).message)).not.toContain(who.accessKey.split('.')[3]);
  });
});
