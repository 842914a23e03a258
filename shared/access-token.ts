/**
 * Keysmith access tokens (contract §9, RFC 9068): JWTs the deployment itself signs with RS256, under one issuer
 * (the issuer base) and one JWKS, so any OAuth 2.0 library and API Gateway's native JWT authorizers can verify them.
 *
 * Signing goes through a {@link TokenSigner}: a KMS asymmetric key in AWS (the private key never leaves KMS), a
 * local RSA key file on a laptop. Verification is pure and synchronous, against public keys loaded once; it needs
 * no DynamoDB read, which is why the access token's lifetime is also its revocation bound.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ACCESS_TOKEN_LIFETIME } from './config.ts';
import { CLIENT_ID, KEY_ID, SCOPE_TOKEN, TENANT_ID } from './ids.ts';
import { type CallerIdentity, RESERVED_SCOPE_PREFIX } from './model.ts';
import { type DenyReason, decodeSegment, MAX_TOKEN_BYTES, TokenRejectedError } from './token-policy.ts';

/** The `typ` of an access token (RFC 9068 §2.1); `application/at+jwt` is the same media type, spelled in full. */
export const ACCESS_TOKEN_TYPES: ReadonlySet<string> = new Set(['at+jwt', 'application/at+jwt']);

export { ACCESS_TOKEN_LIFETIME } from './config.ts';

/** A token-signing public key as the JWKS publishes it. */
export interface IssuerJwk {
  kty: 'RSA';
  n: string;
  e: string;
  kid: string;
  alg: 'RS256';
  use: 'sig';
}

/** One key of the issuer: its `kid` (RFC 7638 thumbprint), the public key, and its JWK. */
export interface IssuerKey {
  kid: string;
  publicKey: KeyObject;
  jwk: IssuerJwk;
}

/** What signs access tokens: RS256 (RSASSA-PKCS1-v1_5 with SHA-256) over the JWS signing input. */
export interface TokenSigner {
  /** The signing key's public half, with its kid. */
  key(): Promise<IssuerKey>;
  /** The RS256 signature of `signingInput`. */
  sign(signingInput: Buffer): Promise<Buffer>;
}

/**
 * The issuer key of an RSA public key: its JWK with `kid` the RFC 7638 thumbprint (SHA-256 of the required members
 * `e`, `kty`, `n` in that order, base64url). Refuses anything but an RSA key of 2048 bits or more with e = 65537.
 */
export function issuerKey(publicKey: KeyObject): IssuerKey {
  if (publicKey.type !== 'public' || publicKey.asymmetricKeyType !== 'rsa')
    throw new TypeError('a token-signing key must be an RSA public key');
  const { modulusLength, publicExponent } = publicKey.asymmetricKeyDetails ?? {};
  if (!modulusLength || modulusLength < 2048 || publicExponent !== 65537n)
    throw new TypeError('a token-signing key must be RSA with at least 2048 bits and e = 65537');
  const { n, e } = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
  const kid = createHash('sha256')
    .update(JSON.stringify({ e, kty: 'RSA', n }))
    .digest('base64url');
  return { kid, publicKey, jwk: { kty: 'RSA', n, e, kid, alg: 'RS256', use: 'sig' } };
}

/** An issuer key from a DER SubjectPublicKeyInfo (what KMS `GetPublicKey` returns). */
export const issuerKeyFromSpki = (der: Uint8Array): IssuerKey =>
  issuerKey(createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }));

/** The claims of an access token (RFC 9068 §2.2, contract §9). */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  client_id: string;
  aud: string;
  scope: string;
  tenant_id: string;
  key_id: string;
  iat: number;
  exp: number;
  jti: string;
}

const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An access token that would be over the 8 KiB every verifier refuses (contract §3): it is never signed. */
export class AccessTokenTooLargeError extends Error {
  override name = 'AccessTokenTooLargeError';
}

/** The JWS signing input of an access token for `kid`; refuses one whose token would be over {@link MAX_TOKEN_BYTES}. */
export function accessTokenSigningInput(kid: string, claims: AccessTokenClaims): string {
  const signingInput = `${encode({ alg: 'RS256', typ: 'at+jwt', kid })}.${encode(claims)}`;
  // An RSA-2048 signature is 256 bytes: 342 base64url characters, and one more dot.
  if (signingInput.length + 343 > MAX_TOKEN_BYTES)
    throw new AccessTokenTooLargeError(`an access token would be over ${MAX_TOKEN_BYTES} bytes`);
  return signingInput;
}

/** Signs an access token with the signer's key: header `{ alg: RS256, typ: at+jwt, kid }`. */
export async function signAccessToken(signer: TokenSigner, claims: AccessTokenClaims): Promise<string> {
  const { kid } = await signer.key();
  const signingInput = accessTokenSigningInput(kid, claims);
  const signature = await signer.sign(Buffer.from(signingInput));
  return `${signingInput}.${signature.toString('base64url')}`;
}

/** What a verified access token says: the caller (contract §4) and the token's own audience and expiry. */
export interface VerifiedAccessToken {
  identity: CallerIdentity;
  audience: string;
  /** `exp`, in seconds since the epoch. */
  expiresAt: number;
  jti: string;
}

/** Options of {@link AccessTokenVerifier}. */
export interface AccessTokenVerifierOptions {
  /** The issuer: `iss` must be exactly this. */
  issuerBase: string;
  /** Audiences a token may name (`aud`: one string, or an array holding one of them). */
  audiences: readonly string[];
  /** @default 60 */
  clockSkewSeconds?: number;
  /** The longest `exp - iat` accepted. @default 3600 (the longest lifetime Keysmith issues) */
  maxLifetimeSeconds?: number;
}

const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

function reject(reason: DenyReason): never {
  throw new TokenRejectedError(reason);
}

function segmentJson(segment: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeSegment(segment).toString('utf8'));
  } catch {
    reject('malformed_token');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) reject('malformed_token');
  return value as Record<string, unknown>;
}

const isNumericDate = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/**
 * Whether a token is one of the issuer's access tokens rather than a client token, by its header alone: its `kid` is
 * an RFC 7638 thumbprint (43 base64url characters), never a keyId (8–16 base62). Cheap: it decodes only the header.
 */
export function looksLikeAccessToken(token: string): boolean {
  const dot = token.indexOf('.');
  if (dot <= 0 || dot > 512) return false;
  const segment = token.slice(0, dot);
  const known = kindCache.get(segment);
  if (known !== undefined) return known;
  let access = false;
  try {
    const header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as { kid?: unknown };
    access = typeof header?.kid === 'string' && THUMBPRINT.test(header.kid);
  } catch {
    access = false;
  }
  // Headers repeat (one per key and algorithm), so the answer is memoized; the map is bounded by clearing it.
  if (kindCache.size >= HEADER_CACHE_SIZE) kindCache.clear();
  kindCache.set(segment, access);
  return access;
}

const HEADER_CACHE_SIZE = 1024;
const kindCache = new Map<string, boolean>();
/** Header segments that passed the access-token header rules, with their kid (a pure function of the segment). */
const headerCache = new Map<string, string>();

/** The kid of a header segment that meets the access-token rules; throws the rule it breaks. */
export function checkedKid(segment: string): string {
  const cached = headerCache.get(segment);
  if (cached !== undefined) return cached;
  const header = segmentJson(segment);
  if (header.alg !== 'RS256') reject('unsupported_alg');
  if (typeof header.typ !== 'string' || !ACCESS_TOKEN_TYPES.has(header.typ.toLowerCase())) reject('unsupported_typ');
  if (header.crit !== undefined || header.b64 !== undefined) reject('crit_not_supported');
  if (typeof header.kid !== 'string') reject('missing_kid');
  if (headerCache.size >= HEADER_CACHE_SIZE) headerCache.clear();
  headerCache.set(segment, header.kid);
  return header.kid;
}

/**
 * Verifies access tokens (contract §9): `alg` RS256 exactly, `typ` at+jwt, `kid` one of the issuer's keys, the
 * signature, `iss` the issuer base, `aud`, the time rules of §3 (60 s skew), and well-formed Keysmith claims.
 * Everything is checked against the keys passed in; nothing is read from storage.
 */
export class AccessTokenVerifier {
  private readonly issuerBase: string;
  private readonly audiences: readonly string[];
  private readonly skew: number;
  private readonly maxLifetime: number;

  constructor(options: AccessTokenVerifierOptions) {
    this.issuerBase = options.issuerBase;
    this.audiences = options.audiences;
    this.skew = options.clockSkewSeconds ?? 60;
    this.maxLifetime = options.maxLifetimeSeconds ?? ACCESS_TOKEN_LIFETIME.max;
  }

  /** Verifies `token` against `keys` (by kid) at `nowSeconds`; throws a {@link TokenRejectedError} with the reason. */
  verify(token: string, keys: ReadonlyMap<string, KeyObject>, nowSeconds = Math.floor(Date.now() / 1000)): VerifiedAccessToken {
    if (token.length === 0) reject('missing_token');
    if (token.length > MAX_TOKEN_BYTES) reject('token_too_large');
    const firstDot = token.indexOf('.');
    const secondDot = firstDot < 0 ? -1 : token.indexOf('.', firstDot + 1);
    if (secondDot < 0 || token.indexOf('.', secondDot + 1) >= 0) reject('malformed_token');
    const key = keys.get(checkedKid(token.slice(0, firstDot)));
    if (!key) reject('unknown_key');
    // Canonical base64url only: one signature, one spelling.
    const signature = decodeSegment(token.slice(secondDot + 1));
    let valid = false;
    try {
      valid = cryptoVerify('sha256', Buffer.from(token.slice(0, secondDot)), key, signature);
    } catch {
      valid = false;
    }
    if (!valid) reject('invalid_signature');

    const claims = segmentJson(token.slice(firstDot + 1, secondDot));
    if (claims.iss !== this.issuerBase) reject('invalid_issuer');
    const { exp, iat, nbf } = claims;
    if (exp === undefined || iat === undefined) reject('missing_claim');
    if (!isNumericDate(exp) || !isNumericDate(iat) || (nbf !== undefined && !isNumericDate(nbf))) reject('invalid_claim');
    if (exp <= nowSeconds - this.skew) reject('token_expired');
    if (iat > nowSeconds + this.skew) reject('issued_in_future');
    if (nbf !== undefined && nbf > nowSeconds + this.skew) reject('token_not_yet_valid');
    if (exp <= iat) reject('invalid_claim');
    if (exp - iat > this.maxLifetime) reject('lifetime_too_long');
    const audience = this.audienceOf(claims.aud);

    const { sub, client_id: clientId, tenant_id: tenantId, key_id: keyId, scope, jti } = claims;
    if (typeof sub !== 'string' || !CLIENT_ID.test(sub)) reject('invalid_claim');
    if (clientId !== sub) reject('subject_mismatch');
    if (typeof tenantId !== 'string' || !TENANT_ID.test(tenantId)) reject('invalid_claim');
    if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) reject('invalid_claim');
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) reject('invalid_claim');
    if (typeof scope !== 'string') reject('invalid_claim');
    const scopes = scope === '' ? [] : scope.split(' ');
    if (!scopes.every((s) => SCOPE_TOKEN.test(s))) reject('invalid_claim');
    // Keysmith's own scopes are never issued in access tokens (they are not revocable before they expire).
    if (scopes.some((s) => s.startsWith(RESERVED_SCOPE_PREFIX))) reject('scope_not_allowed');

    const identity: CallerIdentity = Object.freeze({
      clientId: sub,
      tenantId,
      keyId,
      scopes: Object.freeze([...new Set(scopes)]) as string[],
    });
    return { identity, audience, expiresAt: exp, jti };
  }

  private audienceOf(aud: unknown): string {
    if (typeof aud === 'string') {
      if (!this.audiences.includes(aud)) reject('invalid_audience');
      return aud;
    }
    if (!Array.isArray(aud) || aud.length === 0) reject('invalid_audience');
    if (!aud.every((a) => typeof a === 'string')) reject('invalid_audience');
    const allowed = (aud as string[]).find((a) => this.audiences.includes(a));
    if (allowed === undefined) reject('invalid_audience');
    return allowed;
  }
}
