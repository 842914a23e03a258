/**
 * Contract §3 and RFC 8725, rule by rule: every token of the corpus is refused with its reason code by the core,
 * and refused by the Lambda handler in all three event formats (REST TOKEN, REST REQUEST, HTTP API v2).
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAuthorizerHandler } from '#lambdas/authorizer/handler.ts';
import { Authorizer } from '#shared/authorizer.ts';
import { randomBase62 } from '#shared/ids.ts';
import { type DenyReason, issuerOf, MAX_TOKEN_BYTES } from '#shared/token-policy.ts';
import {
  AUDIENCE,
  addKey,
  b64url,
  clientToken,
  encodeJson,
  firstKeyId,
  generateTestKey,
  httpApiEvent,
  ISSUER_BASE,
  MemoryDirectory,
  makeClient,
  POLICY,
  requestEvent,
  STAGE_WILDCARD,
  signJws,
  type TestClient,
  tokenEvent,
} from './support.ts';

type Handler = ReturnType<typeof createAuthorizerHandler>;

let alice: TestClient; // EdDSA, ES256 and RS256 keys
let bob: TestClient;
let directory: MemoryDirectory;
let authorizer: Authorizer;
let handler: Handler;
let aliceEd: string;
let aliceEs: string;
let aliceRs: string;
const attacker = { ed: generateTestKey('EdDSA'), es: generateTestKey('ES256') };
const now = () => Math.floor(Date.now() / 1000);

beforeAll(() => {
  alice = makeClient(['EdDSA', 'ES256', 'RS256'], ['invoices:read', 'invoices:write']);
  bob = makeClient(['EdDSA'], ['reports:read']);
  [aliceEd, aliceEs, aliceRs] = [...alice.keys.keys()] as [string, string, string];
  directory = new MemoryDirectory(alice, bob);
  authorizer = new Authorizer({ directory, policy: POLICY, revocationSeconds: 60 });
  handler = createAuthorizerHandler(authorizer);
});

afterEach(() => vi.restoreAllMocks());

/** What each of the three formats decided: 'allow', 'deny' or 'error'. */
async function decisions(token: string): Promise<string[]> {
  const header = `Bearer ${token}`;
  const rest = async (event: Parameters<Handler>[0]) => {
    try {
      const result = (await handler(event)) as { policyDocument?: { Statement: { Effect: string }[] } };
      return result.policyDocument?.Statement[0]?.Effect === 'Allow' ? 'allow' : 'other';
    } catch (error) {
      return (error as Error).message === 'Unauthorized' ? 'deny' : 'error';
    }
  };
  const v2 = (await handler(httpApiEvent(header))) as { isAuthorized: boolean };
  return [await rest(tokenEvent(header)), await rest(requestEvent(header)), v2.isAuthorized ? 'allow' : 'deny'];
}

async function expectRefused(token: string, reason: DenyReason): Promise<void> {
  expect(await authorizer.authorize(token)).toEqual({ allow: false, reason });
  expect(await decisions(token)).toEqual(['deny', 'deny', 'deny']);
}

async function expectAllowed(token: string): Promise<void> {
  expect((await authorizer.authorize(token)).allow).toBe(true);
  expect(await decisions(token)).toEqual(['allow', 'allow', 'allow']);
}

const baseClaims = (client: TestClient) => ({
  iss: issuerOf(ISSUER_BASE, client.clientId),
  sub: client.clientId,
  aud: AUDIENCE,
  iat: now(),
  exp: now() + 300,
});

describe('a valid token', () => {
  it('is allowed in every format with string context and the stage wildcard as resource', async () => {
    for (const keyId of [aliceEd, aliceEs, aliceRs]) {
      const token = clientToken(alice, { keyId });
      const expected = { clientId: alice.clientId, tenantId: alice.tenantId, keyId, scopes: 'invoices:read invoices:write' };

      const viaToken = (await handler(tokenEvent(`Bearer ${token}`))) as any;
      expect(viaToken.principalId).toBe(alice.clientId);
      expect(viaToken.policyDocument.Statement).toEqual([
        { Action: 'execute-api:Invoke', Effect: 'Allow', Resource: STAGE_WILDCARD },
      ]);
      expect(viaToken.context).toEqual(expected);

      const viaRequest = (await handler(requestEvent(`bearer ${token}`))) as any;
      expect(viaRequest.policyDocument.Statement[0].Resource).toBe(STAGE_WILDCARD);
      expect(viaRequest.context).toEqual(expected);

      const viaHttpApi = (await handler(httpApiEvent(`Bearer ${token}`))) as any;
      expect(viaHttpApi).toEqual({ isAuthorized: true, context: expected });
      for (const value of Object.values(viaHttpApi.context)) expect(typeof value).toBe('string');
    }
  });

  it('accepts typ absent or at+jwt, nbf in the past, and exp within the 60 s clock skew', async () => {
    await expectAllowed(clientToken(alice, { header: { typ: undefined } }));
    await expectAllowed(clientToken(alice, { header: { typ: 'at+jwt' } }));
    await expectAllowed(clientToken(alice, { claims: { nbf: now() - 10 } }));
    await expectAllowed(clientToken(alice, { claims: { iat: now() - 330, exp: now() - 30 } }));
    await expectAllowed(clientToken(alice, { claims: { iat: now() + 30, exp: now() + 300 } }));
  });

  it('narrows the context to the token scope, a subset of the client scopes', async () => {
    const token = clientToken(alice, { claims: { scope: 'invoices:read  invoices:read' } });
    expect(await authorizer.authorize(token)).toMatchObject({ allow: true, identity: { scopes: ['invoices:read'] } });
    const viaHttpApi = (await handler(httpApiEvent(`Bearer ${token}`))) as any;
    expect(viaHttpApi.context.scopes).toBe('invoices:read');
  });

  it('accepts an aud array that contains an allowed audience', async () => {
    await expectAllowed(clientToken(alice, { claims: { aud: ['https://other.example', AUDIENCE] } }));
  });
});

describe('algorithms (RFC 8725 §2.1, §3.1)', () => {
  it('refuses alg none in any spelling', async () => {
    for (const alg of ['none', 'None', 'NONE', '']) {
      const token = `${encodeJson({ alg, kid: aliceEd, typ: 'JWT' })}.${encodeJson(baseClaims(alice))}.`;
      await expectRefused(token, 'unsupported_alg');
    }
    await expectRefused(`${encodeJson({ kid: aliceEd })}.${encodeJson(baseClaims(alice))}.`, 'unsupported_alg');
  });

  it('refuses HS256 signed with the public key as bytes (PEM, DER) and as JWK JSON', async () => {
    const publicKey = alice.keys.get(aliceEd)!.publicKey;
    const secrets = [
      Buffer.from(publicKey.export({ format: 'pem', type: 'spki' }) as string),
      publicKey.export({ format: 'der', type: 'spki' }),
      Buffer.from(JSON.stringify(publicKey.export({ format: 'jwk' }))),
    ];
    for (const secret of secrets) {
      const token = signJws({ alg: 'HS256', kid: aliceEd, typ: 'JWT' }, baseClaims(alice), secret);
      await expectRefused(token, 'unsupported_alg');
    }
  });

  it('accepts Ed25519 (RFC 9864) as the name of an Ed25519 key’s algorithm, and for no other key', async () => {
    const edKey = alice.keys.get(aliceEd)!.privateKey;
    await expectAllowed(signJws({ alg: 'Ed25519', kid: aliceEd, typ: 'JWT' }, baseClaims(alice), edKey, 'EdDSA'));
    // The name does not choose the verification: on an RSA or P-256 key it is a mismatch.
    await expectRefused(
      signJws({ alg: 'Ed25519', kid: aliceRs }, baseClaims(alice), attacker.ed.privateKey, 'EdDSA'),
      'algorithm_mismatch',
    );
    await expectRefused(
      signJws({ alg: 'Ed25519', kid: aliceEs }, baseClaims(alice), attacker.ed.privateKey, 'EdDSA'),
      'algorithm_mismatch',
    );
    // And an Ed25519 signature by another key under the right kid fails as any other.
    await expectRefused(
      signJws({ alg: 'Ed25519', kid: aliceEd }, baseClaims(alice), attacker.ed.privateKey, 'EdDSA'),
      'invalid_signature',
    );
  });

  it('refuses an alg other than the key’s, even when signed correctly for that alg', async () => {
    // EdDSA key, token claims ES256 (signed by the attacker's P-256 key) and RS256.
    await expectRefused(signJws({ alg: 'ES256', kid: aliceEd }, baseClaims(alice), attacker.es.privateKey), 'algorithm_mismatch');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expectRefused(signJws({ alg: 'RS256', kid: aliceEd }, baseClaims(alice), rsa.privateKey), 'algorithm_mismatch');
    // ES256 key, token claims EdDSA signed by the attacker.
    await expectRefused(signJws({ alg: 'EdDSA', kid: aliceEs }, baseClaims(alice), attacker.ed.privateKey), 'algorithm_mismatch');
    // Real key, but an algorithm Keysmith never accepts.
    for (const alg of ['PS256', 'ES384', 'RS512', 'ES256K', 'Ed448', 'eddsa', 'ed25519']) {
      await expectRefused(
        signJws({ alg, kid: aliceRs }, baseClaims(alice), alice.keys.get(aliceRs)!.privateKey, 'RS256'),
        'unsupported_alg',
      );
    }
  });
});

describe('kid', () => {
  it('refuses the kid of another client’s key, whoever signed it', async () => {
    const bobKey = firstKeyId(bob);
    await expectRefused(
      signJws({ alg: 'EdDSA', kid: bobKey }, baseClaims(alice), bob.keys.get(bobKey)!.privateKey),
      'unknown_key',
    );
    await expectRefused(
      signJws({ alg: 'EdDSA', kid: bobKey }, baseClaims(alice), alice.keys.get(aliceEd)!.privateKey),
      'unknown_key',
    );
  });

  it('refuses an unknown kid', async () => {
    await expectRefused(clientToken(alice, { header: { kid: randomBase62(12) } }), 'unknown_key');
  });

  it('refuses a missing, huge, non-string or path/injection kid before any read', async () => {
    const before = directory.reads;
    const kids: unknown[] = [
      undefined,
      'a'.repeat(4000),
      12345678,
      ['abcdefgh'],
      '../../../etc/passwd',
      'abcdefgh/../x',
      "abcdefgh' OR '1'='1",
      'KEY#abcdefgh',
      'abcdefgh\u0000',
      'abcdefgh%2F',
      'short',
      '',
    ];
    for (const kid of kids) await expectRefused(clientToken(alice, { header: { kid } }), 'missing_kid');
    expect(directory.reads).toBe(before);
  });
});

describe('key-carrying headers are never used to find a key (jku, x5u, jwk, x5c)', () => {
  it('refuses tokens signed by the attacker with a real kid and the attacker’s key in the header', async () => {
    const jwk = attacker.ed.publicKey.export({ format: 'jwk' });
    const der = attacker.ed.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const headers = [
      { jku: 'https://attacker.example/jwks.json' },
      { x5u: 'https://attacker.example/cert.pem' },
      { jwk },
      { x5c: [der] },
      { jku: 'https://attacker.example/jwks.json', jwk, x5c: [der], x5u: 'https://attacker.example/c.pem' },
    ];
    for (const extra of headers) {
      const token = signJws({ alg: 'EdDSA', kid: aliceEd, typ: 'JWT', ...extra }, baseClaims(alice), attacker.ed.privateKey);
      await expectRefused(token, 'invalid_signature');
    }
  });

  it('refuses crit (and b64)', async () => {
    await expectRefused(clientToken(alice, { header: { crit: ['exp'] } }), 'crit_not_supported');
    await expectRefused(clientToken(alice, { header: { crit: [] } }), 'crit_not_supported');
    await expectRefused(clientToken(alice, { header: { b64: false } }), 'crit_not_supported');
  });

  it('refuses a typ other than JWT or at+jwt', async () => {
    for (const typ of ['JWE', 'jwt+unknown', 'application/jwt', 'at+JWT', 42])
      await expectRefused(clientToken(alice, { header: { typ } }), 'unsupported_typ');
  });
});

describe('time claims', () => {
  it('refuses expired, not yet valid, issued in the future and over-long tokens', async () => {
    await expectRefused(clientToken(alice, { claims: { iat: now() - 400, exp: now() - 61 } }), 'token_expired');
    await expectRefused(clientToken(alice, { claims: { nbf: now() + 120 } }), 'token_not_yet_valid');
    await expectRefused(clientToken(alice, { claims: { iat: now() + 120, exp: now() + 400 } }), 'issued_in_future');
    await expectRefused(clientToken(alice, { claims: { exp: now() + 86_401 } }), 'lifetime_too_long');
  });

  it('refuses missing or malformed exp, iat, nbf', async () => {
    await expectRefused(clientToken(alice, { omit: ['exp'] }), 'missing_claim');
    await expectRefused(clientToken(alice, { omit: ['iat'] }), 'missing_claim');
    await expectRefused(clientToken(alice, { claims: { exp: String(now() + 300) } }), 'invalid_claim');
    await expectRefused(clientToken(alice, { claims: { iat: null } }), 'invalid_claim');
    await expectRefused(clientToken(alice, { claims: { nbf: 'yesterday' } }), 'invalid_claim');
    await expectRefused(clientToken(alice, { claims: { exp: now() - 10, iat: now() } }), 'invalid_claim');
  });
});

describe('audience', () => {
  it('refuses wrong, missing, empty, only-wrong and non-string audiences', async () => {
    const cases: unknown[] = [
      'https://elsewhere.example',
      `${AUDIENCE}/`,
      undefined,
      [],
      ['https://elsewhere.example', 'https://other.example'],
      [AUDIENCE, 7],
      42,
      { aud: AUDIENCE },
    ];
    for (const aud of cases)
      await expectRefused(clientToken(alice, aud === undefined ? { omit: ['aud'] } : { claims: { aud } }), 'invalid_audience');
  });
});

describe('issuer and subject', () => {
  it('refuses sub that does not match iss', async () => {
    await expectRefused(clientToken(alice, { claims: { sub: bob.clientId } }), 'subject_mismatch');
    await expectRefused(clientToken(alice, { omit: ['sub'] }), 'subject_mismatch');
  });

  it('refuses another client’s issuer with this client’s key', async () => {
    const claims = { iss: issuerOf(ISSUER_BASE, bob.clientId), sub: bob.clientId };
    await expectRefused(clientToken(alice, { claims }), 'unknown_key');
    await expectRefused(clientToken(alice, { claims, header: { kid: firstKeyId(bob) } }), 'invalid_signature');
  });

  it('refuses trailing-slash, other-base and malformed issuers', async () => {
    const issuers = [
      `${issuerOf(ISSUER_BASE, alice.clientId)}/`,
      `${ISSUER_BASE}//v1/clients/${alice.clientId}`,
      `${ISSUER_BASE}/v1/clients/${alice.clientId}?x=1`,
      `https://keysmith.test/v1/clients/${alice.clientId}`,
      `${ISSUER_BASE}/v1/clients/${alice.clientId.toUpperCase()}`,
      `${ISSUER_BASE}/v1/clients/`,
      alice.clientId,
    ];
    for (const iss of issuers) await expectRefused(clientToken(alice, { claims: { iss } }), 'invalid_issuer');
    await expectRefused(clientToken(alice, { omit: ['iss'] }), 'invalid_issuer');
  });
});

describe('integrity', () => {
  it('refuses a flipped signature bit in every signature byte position sampled', async () => {
    for (const keyId of [aliceEd, aliceEs, aliceRs]) {
      const token = clientToken(alice, { keyId });
      const [h, p, s] = token.split('.') as [string, string, string];
      const signature = Buffer.from(s, 'base64url');
      for (const index of [0, 1, signature.length >> 1, signature.length - 1]) {
        const flipped = Buffer.from(signature);
        flipped[index]! ^= 0x01;
        await expectRefused(`${h}.${p}.${b64url(flipped)}`, 'invalid_signature');
      }
    }
  });

  it('refuses a payload changed after signing', async () => {
    const token = clientToken(alice, { claims: { scope: 'invoices:read' } });
    const [h, , s] = token.split('.') as [string, string, string];
    const changed = { ...baseClaims(alice), scope: 'invoices:read invoices:write' };
    await expectRefused(`${h}.${encodeJson(changed)}.${s}`, 'invalid_signature');
  });

  it('refuses tokens over 8 KiB without parsing them or reading the directory', async () => {
    const token = clientToken(alice, { claims: { pad: 'x'.repeat(MAX_TOKEN_BYTES) } });
    expect(token.length).toBeGreaterThan(MAX_TOKEN_BYTES);
    const parse = vi.spyOn(JSON, 'parse');
    const before = directory.reads;
    await expectRefused(token, 'token_too_large');
    await expectRefused('a'.repeat(1_000_000), 'token_too_large');
    expect(parse).not.toHaveBeenCalled();
    expect(directory.reads).toBe(before);
  });

  it('refuses wrong segment counts', async () => {
    const [h, p, s] = clientToken(alice).split('.') as [string, string, string];
    for (const token of [
      `${h}.${p}`,
      `${h}.${p}.${s}.${s}`,
      `${h}.${p}.${s}.${s}.${s}`,
      h,
      `${h}..${s}`,
      `.${p}.${s}`,
      `${h}.${p}.`,
    ])
      await expectRefused(token, 'malformed_token');
  });

  it('refuses bad or non-canonical base64url', async () => {
    const original = clientToken(alice);
    const [h, p, s] = original.split('.') as [string, string, string];
    // Standard base64 with padding: the same bytes spelled another way.
    const standard = (segment: string) => `${Buffer.from(segment, 'base64url').toString('base64')}==`;
    const bad = [
      `${h}=.${p}.${s}`,
      `${standard(h)}.${p}.${s}`,
      `${h}.${standard(p)}.${s}`,
      `${h}.${p}.${s}==`,
      `${h}.${p} .${s}`,
      `${h}.${p}.${s}!`,
      `${h}.${p}.${s}A`,
      `${h}.${p}.+${s.slice(1)}`,
      `${h}.${p}./${s.slice(1)}`,
    ];
    for (const token of bad) {
      expect(token).not.toBe(original);
      expect((await authorizer.authorize(token)).allow).toBe(false);
      expect(await decisions(token)).toEqual(['deny', 'deny', 'deny']);
    }
    // A non-canonical last character (unused bits set) is a second spelling of the same bytes: refused unparsed.
    const claims: Record<string, unknown> = { ...baseClaims(alice), pad: '' };
    while (Buffer.byteLength(JSON.stringify(claims)) % 3 !== 1) claims.pad += 'x';
    const encoded = encodeJson(claims);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twisted = `${encoded.slice(0, -1)}${alphabet[alphabet.indexOf(encoded.at(-1)!) + 1]}`;
    expect(Buffer.from(twisted, 'base64url').equals(Buffer.from(encoded, 'base64url'))).toBe(true);
    await expectRefused(`${h}.${twisted}.${s}`, 'malformed_token');
  });

  it('refuses non-object JSON and non-JSON segments', async () => {
    const claims = encodeJson(baseClaims(alice));
    const header = encodeJson({ alg: 'EdDSA', kid: aliceEd });
    const sig = b64url(Buffer.alloc(64));
    for (const value of ['[]', 'null', '123', '"EdDSA"', 'true', '{', 'not json', '\uFEFF{}'])
      await expectRefused(`${b64url(value)}.${claims}.${sig}`, 'malformed_token');
    for (const value of ['[]', 'null', '123', '"x"', '{"iss":'])
      await expectRefused(`${header}.${b64url(value)}.${sig}`, 'malformed_token');
  });
});

describe('scopes', () => {
  it('refuses scope escalation, including the reserved keysmith: scopes', async () => {
    await expectRefused(clientToken(bob, { claims: { scope: 'reports:read invoices:write' } }), 'scope_not_allowed');
    await expectRefused(clientToken(bob, { claims: { scope: 'keysmith:admin' } }), 'scope_not_allowed');
    await expectRefused(clientToken(bob, { claims: { scope: 'keysmith:platform-admin' } }), 'scope_not_allowed');
    await expectRefused(clientToken(bob, { claims: { scope: 'reports:rea' } }), 'scope_not_allowed');
    await expectRefused(clientToken(bob, { claims: { scope: ' ' } }), 'invalid_claim');
    await expectRefused(clientToken(bob, { claims: { scope: ['reports:read'] } }), 'invalid_claim');
  });
});

describe('key and client state (in-memory directory; see store.test.ts for the real store)', () => {
  it('refuses a revoked key, an expired key, a disabled client and an unknown client', async () => {
    const carol = makeClient(['EdDSA']);
    const expiring = addKey(carol, 'EdDSA', new Date(Date.now() - 1000).toISOString());
    const revoked = addKey(carol, 'ES256');
    carol.record.keys.find((k) => k.keyId === revoked)!.status = 'revoked';
    directory.put(carol);
    const fresh = new Authorizer({ directory, policy: POLICY, revocationSeconds: 60 });
    expect(await fresh.authorize(clientToken(carol, { keyId: revoked }))).toEqual({ allow: false, reason: 'key_revoked' });
    expect(await fresh.authorize(clientToken(carol, { keyId: expiring }))).toEqual({ allow: false, reason: 'key_expired' });

    const dave = makeClient(['EdDSA']);
    dave.record.client.enabled = false;
    directory.put(dave);
    await expectRefused(clientToken(dave), 'client_disabled');
    await expectRefused(clientToken(makeClient(['EdDSA'])), 'unknown_client');
  });
});

describe('the bearer header', () => {
  it('denies a missing or malformed Authorization header in every format', async () => {
    const token = clientToken(alice);
    for (const header of [token, `Basic ${token}`, `Bearer`, `Bearer ${token} extra`, `Bearer\t${token}`]) {
      await expect(handler(tokenEvent(header))).rejects.toThrow(/^Unauthorized$/);
      await expect(handler(requestEvent(header))).rejects.toThrow(/^Unauthorized$/);
      expect(await handler(httpApiEvent(header))).toEqual({ isAuthorized: false });
    }
    await expect(handler(requestEvent(undefined))).rejects.toThrow(/^Unauthorized$/);
    expect(await handler(httpApiEvent(undefined))).toEqual({ isAuthorized: false });
  });
});
