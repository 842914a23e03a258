/**
 * The authorizer accepts Keysmith access tokens (contract §9): verified against the issuer's keys, loaded once per
 * container, with no directory read; the same §4 context as a client token; refused when tampered, expired or
 * re-signed; and a failure to load the keys fails closed.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAuthorizerHandler } from '#lambdas/authorizer/handler.ts';
import { type AccessTokenClaims, type IssuerKey, signAccessToken } from '#shared/access-token.ts';
import { Authorizer, AuthorizerUnavailableError, type KeyDirectory } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { LocalTokenSigner } from '#shared/token-signers.ts';
import { createTokenSigners, issuerKeysOf } from '#shared/wiring.ts';
import { AUDIENCE, encodeJson, ISSUER_BASE, METHOD_ARN, POLICY, STAGE_WILDCARD } from './support.ts';

const signer = new LocalTokenSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
const retiring = new LocalTokenSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);

/** A directory that must never be read: access tokens need none. */
const noReads: KeyDirectory = {
  getClientWithKeys: () => {
    throw new Error('an access token must not read the directory');
  },
};

const claims = (overrides: Partial<AccessTokenClaims> = {}): AccessTokenClaims => {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER_BASE,
    sub: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
    client_id: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
    aud: AUDIENCE,
    scope: 'invoices:read',
    tenant_id: 'acme',
    key_id: 'k1234567',
    iat: now,
    exp: now + 300,
    jti: 'j1',
    ...overrides,
  };
};

function authorizer(issuerKeys?: () => Promise<readonly IssuerKey[]>, now: () => number = Date.now) {
  let loads = 0;
  const core = new Authorizer({
    directory: noReads,
    policy: POLICY,
    revocationSeconds: 60,
    now,
    ...(issuerKeys
      ? {
          issuerKeys: () => {
            loads += 1;
            return issuerKeys();
          },
        }
      : {}),
  });
  return { core, loads: () => loads };
}

const bothKeys = async () => [await signer.key(), await retiring.key()];

describe('access tokens at the authorizer', () => {
  it('allow with the §4 context, from either published key, loading the keys once and reading nothing', async () => {
    const { core, loads } = authorizer(bothKeys);
    const handler = createAuthorizerHandler(core);
    const token = await signAccessToken(signer, claims());
    const answer = await handler({ type: 'TOKEN', authorizationToken: `Bearer ${token}`, methodArn: METHOD_ARN });
    expect(answer).toEqual({
      principalId: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: STAGE_WILDCARD }],
      },
      context: { clientId: 'sc_AAAAAAAAAAAAAAAAAAAAAA', tenantId: 'acme', keyId: 'k1234567', scopes: 'invoices:read' },
    });
    // The retiring key's tokens still verify during a rotation.
    expect(await core.authorize(await signAccessToken(retiring, claims({ jti: 'j2' })))).toMatchObject({ allow: true });
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => core.authorize(await signAccessToken(signer, claims({ jti: `c${i}` })))),
    );
    expect(loads()).toBe(1);
  });

  it('refuse a tampered, expired, re-signed or foreign-issuer token, and any when no issuer keys are configured', async () => {
    const { core } = authorizer(bothKeys);
    const good = await signAccessToken(signer, claims());
    const [h, , s] = good.split('.') as [string, string, string];
    const foreign = new LocalTokenSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const now = Math.floor(Date.now() / 1000);
    const { kid } = await signer.key();
    // Re-signed: the right kid in the header, the signature by another key.
    const resigned = (await signAccessToken(foreign, claims())).split('.');
    const cases: [string, string][] = [
      [`${h}.${encodeJson({ ...claims(), tenant_id: 'other' })}.${s}`, 'invalid_signature'],
      [await signAccessToken(signer, claims({ iat: now - 700, exp: now - 400 })), 'token_expired'],
      [`${encodeJson({ alg: 'RS256', typ: 'at+jwt', kid })}.${resigned[1]}.${resigned[2]}`, 'invalid_signature'],
      [await signAccessToken(foreign, claims()), 'unknown_key'],
      [await signAccessToken(signer, claims({ iss: 'https://evil.example' })), 'invalid_issuer'],
      [await signAccessToken(signer, claims({ aud: 'https://other.example' })), 'invalid_audience'],
    ];
    for (const [token, reason] of cases) expect(await core.authorize(token)).toEqual({ allow: false, reason });
    expect(await authorizer().core.authorize(good)).toEqual({ allow: false, reason: 'unknown_key' });
  });

  it('fail closed when the issuer keys cannot be loaded, and try again a second later', async () => {
    let fail = true;
    let clock = Date.now();
    const { core, loads } = authorizer(
      async () => {
        if (fail) throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
        return [await signer.key()];
      },
      () => clock,
    );
    const token = await signAccessToken(signer, claims());
    await expect(core.authorize(token)).rejects.toBeInstanceOf(AuthorizerUnavailableError);
    fail = false;
    // Within the second, the failure is repeated without asking again: an outage is not a flood of key reads.
    await expect(core.authorize(token)).rejects.toBeInstanceOf(AuthorizerUnavailableError);
    expect(loads()).toBe(1);
    clock += 1001;
    expect(await core.authorize(token)).toMatchObject({ allow: true });
    expect(loads()).toBe(2);
  });

  it('check the header before loading any key, and refuse keysmith: scopes and non-canonical signatures', async () => {
    const { core, loads } = authorizer(bothKeys);
    const kid = (await signer.key()).kid;
    const body = encodeJson(claims());
    // A made-up header with a thumbprint-shaped kid: refused by its header alone, no key loaded.
    for (const header of [
      { alg: 'none', kid },
      { alg: 'RS256', kid },
      { alg: 'RS256', typ: 'at+jwt', kid, crit: ['b64'] },
    ])
      expect((await core.authorize(`${encodeJson(header)}.${body}.`)).allow).toBe(false);
    expect(loads()).toBe(0);

    expect(await core.authorize(await signAccessToken(signer, claims({ scope: 'keysmith:admin' })))).toEqual({
      allow: false,
      reason: 'scope_not_allowed',
    });
    // The same signature with its last character's unused bits set: another spelling, refused.
    const token = await signAccessToken(signer, claims());
    const last = token.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const respelled = `${token.slice(0, -1)}${alphabet[alphabet.indexOf(last) | 1]}`;
    expect(respelled).not.toBe(token);
    expect(await core.authorize(respelled)).toEqual({ allow: false, reason: 'malformed_token' });
    expect(await core.authorize(token)).toMatchObject({ allow: true });
  });

  it('are configured from the environment: a local signing key file, the published ones, the lifetime bounds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-token-keys-'));
    try {
      const active = join(dir, 'token-signing-key');
      const next = join(dir, 'token-signing-key-next');
      writeFileSync(active, LocalTokenSigner.generatePem(), { mode: 0o600 });
      writeFileSync(next, LocalTokenSigner.generatePem(), { mode: 0o600 });
      const config = loadConfig({
        KEYSMITH_ISSUER_BASE: ISSUER_BASE,
        KEYSMITH_AUDIENCES: AUDIENCE,
        KEYSMITH_LOCAL_TOKEN_SIGNING_KEY_FILE: active,
        KEYSMITH_LOCAL_TOKEN_PUBLISHED_KEY_FILES: ` ${next} ,`,
      });
      expect(config.tokenSigning).toEqual({ kind: 'local', keyFile: active, publishedKeyFiles: [next] });
      expect(config.accessTokenSeconds).toBe(300);
      const signers = createTokenSigners(config);
      if (!signers) throw new Error('expected signers');
      const published = await issuerKeysOf(signers)();
      expect(published.map((key) => key.kid)).toEqual([
        (await signers.signer.key()).kid,
        (await signers.published[0]!.key()).kid,
      ]);
      // The next key verifies at the authorizer before it signs anything of its own.
      const core = new Authorizer({
        directory: noReads,
        policy: config,
        revocationSeconds: 60,
        issuerKeys: issuerKeysOf(signers),
      });
      expect(await core.authorize(await signAccessToken(signers.published[0]!, claims()))).toMatchObject({ allow: true });

      writeFileSync(next, 'not a key');
      expect(() => createTokenSigners(config)).toThrow('KEYSMITH_LOCAL_TOKEN_PUBLISHED_KEY_FILES');
      expect(createTokenSigners(loadConfig({}))).toBeUndefined();
      expect(
        loadConfig({ KEYSMITH_TOKEN_SIGNING_KEY_ARN: 'arn:a', KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS: 'arn:b,arn:c' }).tokenSigning,
      ).toEqual({
        kind: 'kms',
        keyArn: 'arn:a',
        publishedKeyArns: ['arn:b', 'arn:c'],
      });
      for (const seconds of ['59', '3601', 'x'])
        expect(() => loadConfig({ KEYSMITH_ACCESS_TOKEN_SECONDS: seconds })).toThrow('KEYSMITH_ACCESS_TOKEN_SECONDS');
      expect(loadConfig({ KEYSMITH_ACCESS_TOKEN_SECONDS: '3600' }).accessTokenSeconds).toBe(3600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
