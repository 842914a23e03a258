import fc from 'fast-check';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuthorizedFetch } from '#sdk/fetch.ts';
import { mintToken } from '#sdk/token.ts';
import { TokenProvider } from '#sdk/token-provider.ts';
import { AccessKeyFormatError, formatAccessKey, generateAccessKeyPair } from '#shared/access-key.ts';
import { newClientId, newKeyId } from '#shared/ids.ts';
import type { Algorithm } from '#shared/model.ts';

const ISSUER_BASE = 'https://keys.example.test';

async function accessKeyFor(algorithm: Algorithm = 'EdDSA', tenant = 'acme') {
  const pair = await generateAccessKeyPair(algorithm);
  const clientId = newClientId();
  const keyId = newKeyId();
  return {
    clientId,
    keyId,
    tenant,
    privateKey: pair.privateKeyPkcs8,
    accessKey: formatAccessKey(clientId, keyId, tenant, pair.privateKeyPkcs8),
  };
}

describe('TokenProvider', () => {
  it('signs tokens per contract §3 with the key algorithm, kid, iss, sub, aud, scope and lifetime', async () => {
    for (const algorithm of ['EdDSA', 'ES256', 'RS256'] as const) {
      const key = await accessKeyFor(algorithm);
      const provider = new TokenProvider({
        accessKey: key.accessKey,
        issuerBase: `${ISSUER_BASE}/`,
        audience: 'https://api.example.test',
        scope: 'invoices:read',
        lifetimeSeconds: 120,
      });
      const token = await provider.getToken();
      expect(decodeProtectedHeader(token)).toEqual({ alg: algorithm, kid: key.keyId, typ: 'JWT' });
      const claims = decodeJwt(token);
      expect(claims).toMatchObject({
        iss: `${ISSUER_BASE}/v1/clients/${key.clientId}`,
        sub: key.clientId,
        aud: 'https://api.example.test',
        scope: 'invoices:read',
      });
      expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(120);
      expect(provider.identity).toEqual({ clientId: key.clientId, keyId: key.keyId, tenantId: key.tenant });
    }
  });

  it('reuses its token and renews it before expiry (60 s before a 300 s lifetime; a fifth of a long one)', async () => {
    const key = await accessKeyFor('ES256'); // ECDSA signatures are randomized: a new signing is a new token
    let now = 1_800_000_000_000;
    const provider = new TokenProvider({ accessKey: key.accessKey, issuerBase: ISSUER_BASE, now: () => now });
    const first = await provider.getToken();
    now += 239_000;
    expect(await provider.getToken()).toBe(first);
    now += 1_000; // 240 s after iat: 60 s before exp
    const second = await provider.getToken();
    expect(second).not.toBe(first);
    expect(decodeJwt(second).iat).toBe(Math.floor(now / 1000));

    const long = new TokenProvider({ accessKey: key.accessKey, issuerBase: ISSUER_BASE, lifetimeSeconds: 3600, now: () => now });
    const hour = await long.getToken();
    now += 2_879_000;
    expect(await long.getToken()).toBe(hour);
    now += 1_000; // 80 % of the lifetime
    expect(await long.getToken()).not.toBe(hour);
  });

  it('shares one signing among concurrent callers', async () => {
    const key = await accessKeyFor('ES256');
    let now = 1_800_000_000_000;
    const provider = new TokenProvider({ accessKey: key.accessKey, issuerBase: ISSUER_BASE, now: () => now });
    const cold = await Promise.all(Array.from({ length: 25 }, () => provider.getToken()));
    expect(new Set(cold).size).toBe(1);
    now += 290_000;
    const renewed = await Promise.all(Array.from({ length: 25 }, () => provider.getToken()));
    expect(new Set(renewed).size).toBe(1);
    expect(renewed[0]).not.toBe(cold[0]);
  });

  it('signs again after invalidate()', async () => {
    const key = await accessKeyFor('ES256');
    const provider = new TokenProvider({ accessKey: key.accessKey, issuerBase: ISSUER_BASE });
    const first = await provider.getToken();
    provider.invalidate();
    expect(await provider.getToken()).not.toBe(first);
  });

  it('refuses nonsense lifetimes and renewal margins', async () => {
    const { accessKey } = await accessKeyFor();
    expect(() => new TokenProvider({ accessKey, issuerBase: ISSUER_BASE, lifetimeSeconds: 0 })).toThrow(RangeError);
    expect(() => new TokenProvider({ accessKey, issuerBase: ISSUER_BASE, lifetimeSeconds: 60, renewBeforeSeconds: 60 })).toThrow(
      RangeError,
    );
  });
});

describe('a malformed or truncated access key', () => {
  /** No part of the secret (nor the whole key) appears in the message. */
  function expectNoSecret(error: unknown, accessKey: string, privateKey: string) {
    expect(error).toBeInstanceOf(AccessKeyFormatError);
    const text = `${(error as Error).message} ${(error as Error).stack ?? ''} ${JSON.stringify(error)}`;
    expect(text).not.toContain(accessKey);
    for (let i = 0; i + 12 <= privateKey.length; i += 6) expect(text).not.toContain(privateKey.slice(i, i + 12));
  }

  it('fails in the constructor with a clear message that never echoes the key', async () => {
    const key = await accessKeyFor();
    const cases: [string, RegExp][] = [
      [key.accessKey.slice(0, key.accessKey.length - 20), /PKCS#8|truncated/],
      [key.accessKey.split('.').slice(0, 3).join('.'), /four dot-separated parts.*has 3/],
      [`x${key.accessKey}`, /clientId/],
      [key.accessKey.replace(`.${key.keyId}.`, '.bad-key!.'), /keyId/],
      [key.accessKey.replace('.acme.', '.ACME.'), /tenantId/],
      [`${key.accessKey}%%`, /base64/],
    ];
    for (const [bad, message] of cases) {
      let thrown: unknown;
      try {
        new TokenProvider({ accessKey: bad, issuerBase: ISSUER_BASE });
      } catch (error) {
        thrown = error;
      }
      expect((thrown as Error).message).toMatch(message);
      expectNoSecret(thrown, bad, key.privateKey);
      await expect(mintToken(bad, { issuerBase: ISSUER_BASE })).rejects.toBeInstanceOf(AccessKeyFormatError);
    }
  });

  it('never echoes the key, however it is cut or changed (property)', async () => {
    const key = await accessKeyFor('ES256');
    await fc.assert(
      fc.property(fc.integer({ min: 0, max: key.accessKey.length - 1 }), fc.string({ maxLength: 4 }), (cut, junk) => {
        const bad = key.accessKey.slice(0, cut) + junk;
        try {
          new TokenProvider({ accessKey: bad, issuerBase: ISSUER_BASE });
        } catch (error) {
          expectNoSecret(error, key.accessKey, key.privateKey);
          return;
        }
        // Only a cut that keeps a whole valid key (e.g. trimming base64 padding away is not one) may succeed.
        expect(bad.startsWith(key.accessKey.slice(0, -3))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('createAuthorizedFetch', () => {
  it('adds Authorization: Bearer <token>, keeps other headers, replaces a caller Authorization, and drops the token after a 401', async () => {
    const key = await accessKeyFor('ES256');
    const seen: Headers[] = [];
    let status = 200;
    const base: typeof fetch = async (_input, init) => {
      seen.push(new Headers(init?.headers));
      return new Response('{}', { status });
    };
    const provider = new TokenProvider({ accessKey: key.accessKey, issuerBase: ISSUER_BASE });
    const authorized = createAuthorizedFetch(provider, { fetch: base });
    await authorized('https://api.example.test/a', { headers: { 'x-request-id': 'r1', authorization: 'Basic abc' } });
    await authorized(new Request('https://api.example.test/b', { headers: { 'x-from-request': 'yes' } }));
    const token = await provider.getToken();
    expect(seen[0]?.get('authorization')).toBe(`Bearer ${token}`);
    expect(seen[0]?.get('x-request-id')).toBe('r1');
    expect(seen[1]?.get('authorization')).toBe(`Bearer ${token}`);
    expect(seen[1]?.get('x-from-request')).toBe('yes');
    status = 401;
    await authorized('https://api.example.test/c');
    status = 200;
    await authorized('https://api.example.test/d');
    expect(seen[3]?.get('authorization')).not.toBe(`Bearer ${token}`);
  });

  it('builds its own provider from options', async () => {
    const key = await accessKeyFor();
    let header: string | null = null;
    const authorized = createAuthorizedFetch(
      { accessKey: key.accessKey, issuerBase: ISSUER_BASE, audience: 'https://api.example.test' },
      {
        fetch: async (_input, init) => {
          header = new Headers(init?.headers).get('authorization');
          return new Response(null, { status: 204 });
        },
      },
    );
    await authorized('https://api.example.test/');
    expect(decodeJwt((header ?? '').replace(/^Bearer /, '')).aud).toBe('https://api.example.test');
  });
});
