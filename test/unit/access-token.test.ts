/**
 * Access tokens (contract §9, RFC 9068): signed by the local key and by KMS (a KMS client mocked in-process around a
 * real RSA key), verified by Keysmith and by two independent libraries, and every forgery refused with its reason.
 */
import { constants, createHmac, generateKeyPairSync, type KeyObject, privateEncrypt, sign } from 'node:crypto';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { JwtVerifier } from 'aws-jwt-verify';
import { mockClient } from 'aws-sdk-client-mock';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  type AccessTokenClaims,
  AccessTokenVerifier,
  issuerKey,
  looksLikeAccessToken,
  signAccessToken,
} from '#shared/access-token.ts';
import { TokenRejectedError } from '#shared/token-policy.ts';
import { KmsTokenSigner, LocalTokenSigner } from '#shared/token-signers.ts';

const ISSUER = 'https://keys.example.test';
const AUDIENCE = 'https://api.example.test';
const now = Math.floor(Date.now() / 1000);

const claims = (overrides: Partial<Record<keyof AccessTokenClaims, unknown>> = {}): AccessTokenClaims =>
  ({
    iss: ISSUER,
    sub: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
    client_id: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
    aud: AUDIENCE,
    scope: 'invoices:read invoices:write',
    tenant_id: 'acme',
    key_id: 'k1234567',
    iat: now,
    exp: now + 300,
    jti: 'jti-1',
    ...overrides,
  }) as AccessTokenClaims;

const signer = new LocalTokenSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
const verifier = new AccessTokenVerifier({ issuerBase: ISSUER, audiences: [AUDIENCE] });

async function keyMap(): Promise<Map<string, KeyObject>> {
  const { kid, publicKey } = await signer.key();
  return new Map([[kid, publicKey]]);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A JWS with any header and claims, signed by `key` with RS256 (or HS256 over `secret`). */
function forge(header: Record<string, unknown>, payload: unknown, key: KeyObject | Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = Buffer.isBuffer(key)
    ? createHmac('sha256', key).update(input).digest()
    : sign('sha256', Buffer.from(input), key);
  return `${input}.${signature.toString('base64url')}`;
}

async function reason(token: string, keys?: Map<string, KeyObject>): Promise<string> {
  try {
    verifier.verify(token, keys ?? (await keyMap()), now);
  } catch (error) {
    if (error instanceof TokenRejectedError) return error.reason;
    throw error;
  }
  return 'allowed';
}

describe('access tokens', () => {
  it('publish a JWK whose kid is its RFC 7638 thumbprint, and refuse a weak or non-RSA key', async () => {
    const { kid, jwk } = await signer.key();
    expect(kid).toBe(await calculateJwkThumbprint(jwk, 'sha256'));
    expect(jwk).toEqual({ kty: 'RSA', n: expect.any(String), e: 'AQAB', kid, alg: 'RS256', use: 'sig' });
    expect(() => issuerKey(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)).toThrow('2048');
    expect(() => issuerKey(generateKeyPairSync('ed25519').publicKey)).toThrow('RSA');
  });

  it('are signed with header { alg: RS256, typ: at+jwt, kid } and verified to the caller of contract §4', async () => {
    const token = await signAccessToken(signer, claims());
    const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString());
    expect(header).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: (await signer.key()).kid });
    expect(looksLikeAccessToken(token)).toBe(true);
    const verified = verifier.verify(token, await keyMap(), now);
    expect(verified).toEqual({
      identity: {
        clientId: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
        tenantId: 'acme',
        keyId: 'k1234567',
        scopes: ['invoices:read', 'invoices:write'],
      },
      audience: AUDIENCE,
      expiresAt: now + 300,
      jti: 'jti-1',
    });
  });

  it('verify under jose and aws-jwt-verify from the published JWKS alone', async () => {
    const token = await signAccessToken(signer, claims());
    // As a client would have it: the JSON of the JWKS route.
    const jwks = JSON.parse(JSON.stringify({ keys: [(await signer.key()).jwk] }));
    const jose = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['RS256'],
      typ: 'at+jwt',
    });
    expect(jose.payload).toMatchObject({ tenant_id: 'acme', scope: 'invoices:read invoices:write' });
    const aws = JwtVerifier.create({ issuer: ISSUER, audience: AUDIENCE, jwksUri: `${ISSUER}/.well-known/jwks.json` });
    aws.cacheJwks(jwks);
    expect(await aws.verify(token)).toMatchObject({ client_id: 'sc_AAAAAAAAAAAAAAAAAAAAAA', key_id: 'k1234567' });
  });

  it('sign with KMS: one GetPublicKey per signer, one Sign per token, over the SHA-256 digest', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kms = mockClient(KMSClient);
    kms.on(GetPublicKeyCommand).resolves({
      KeySpec: 'RSA_2048',
      PublicKey: rsa.publicKey.export({ format: 'der', type: 'spki' }),
    });
    kms.on(SignCommand).callsFake((input) => {
      expect(input).toMatchObject({ MessageType: 'DIGEST', SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256', KeyId: 'arn:key' });
      // What KMS does with a DIGEST: PKCS#1 v1.5 over the given SHA-256 digest.
      const digestInfo = Buffer.concat([SHA256_DIGEST_INFO, input.Message as Uint8Array]);
      return { Signature: privateEncrypt({ key: rsa.privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo) };
    });
    const kmsSigner = new KmsTokenSigner(new KMSClient({ region: 'us-east-1' }), 'arn:key');
    const tokens = await Promise.all([signAccessToken(kmsSigner, claims()), signAccessToken(kmsSigner, claims({ jti: 'j2' }))]);
    const { kid, publicKey } = await kmsSigner.key();
    for (const token of tokens) expect(verifier.verify(token, new Map([[kid, publicKey]]), now).identity.tenantId).toBe('acme');
    expect(kms.commandCalls(GetPublicKeyCommand)).toHaveLength(1);
    expect(kms.commandCalls(SignCommand)).toHaveLength(2);
    kms.restore();
  });

  it('refuse every forgery and misuse with its reason', async () => {
    const { kid, publicKey } = await signer.key();
    const good = await signAccessToken(signer, claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const header = { alg: 'RS256', typ: 'at+jwt', kid };
    const pem = Buffer.from(publicKey.export({ format: 'pem', type: 'spki' }) as string);
    const cases: [string, string][] = [
      ['payload changed after signing', `${h}.${b64({ ...claims(), scope: 'keysmith:platform-admin' })}.${s}`],
      ['signature dropped', `${h}.${p}.`],
      ['alg none', `${b64({ ...header, alg: 'none' })}.${p}.`],
      ['HS256 with the public key as secret', forge({ ...header, alg: 'HS256' }, claims(), pem)],
      ['a foreign key under the right kid', forge(header, claims(), foreign)],
      ['no typ (a client-token shape)', forge({ alg: 'RS256', kid }, claims(), foreign)],
      ['typ JWT', forge({ ...header, typ: 'JWT' }, claims(), foreign)],
      ['an unknown kid', forge({ ...header, kid: 'x'.repeat(43) }, claims(), foreign)],
      ['crit', forge({ ...header, crit: ['exp'] }, claims(), foreign)],
    ];
    const expected: Record<string, string> = {
      'payload changed after signing': 'invalid_signature',
      'signature dropped': 'malformed_token',
      'alg none': 'unsupported_alg',
      'HS256 with the public key as secret': 'unsupported_alg',
      'a foreign key under the right kid': 'invalid_signature',
      'no typ (a client-token shape)': 'unsupported_typ',
      'typ JWT': 'unsupported_typ',
      'an unknown kid': 'unknown_key',
      crit: 'crit_not_supported',
    };
    for (const [what, token] of cases) expect(await reason(token), what).toBe(expected[what]);

    // Claims, each signed properly: the signature is not what fails them.
    const signed = (overrides: Parameters<typeof claims>[0]) => signAccessToken(signer, claims(overrides));
    const claimCases: [Parameters<typeof claims>[0], string][] = [
      [{ iss: `${ISSUER}/` }, 'invalid_issuer'],
      [{ iss: `${ISSUER}/v1/clients/sc_AAAAAAAAAAAAAAAAAAAAAA` }, 'invalid_issuer'],
      [{ aud: 'https://other.example' }, 'invalid_audience'],
      [{ aud: [] }, 'invalid_audience'],
      [{ exp: now - 61, iat: now - 400 }, 'token_expired'],
      [{ iat: now + 120, exp: now + 400 }, 'issued_in_future'],
      [{ exp: now + 4000 }, 'lifetime_too_long'],
      [{ exp: undefined }, 'missing_claim'],
      [{ exp: '9999999999' }, 'invalid_claim'],
      [{ client_id: 'sc_BBBBBBBBBBBBBBBBBBBBBB' }, 'subject_mismatch'],
      [{ tenant_id: 'Bad.Tenant' }, 'invalid_claim'],
      [{ key_id: 'x' }, 'invalid_claim'],
      [{ scope: ['a'] }, 'invalid_claim'],
      [{ scope: 'a  b' }, 'invalid_claim'],
      [{ jti: '' }, 'invalid_claim'],
    ];
    for (const [overrides, why] of claimCases) expect(await reason(await signed(overrides)), JSON.stringify(overrides)).toBe(why);
    expect(await reason(await signed({ aud: ['https://other.example', AUDIENCE] }))).toBe('allowed');
    expect(await reason(await signed({ scope: '' }))).toBe('allowed');
    expect(await reason('a'.repeat(8193))).toBe('token_too_large');
    expect(looksLikeAccessToken(forge({ alg: 'EdDSA', kid: 'k1234567' }, claims(), foreign))).toBe(false);
  });
});

/** The DER prefix of a SHA-256 DigestInfo: with it, raw PKCS#1 v1.5 over a digest equals KMS's DIGEST signing. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');
