/**
 * The rules of a client token (contract §3, RFC 8725), in one module shared by the Lambda authorizer and
 * the SDK's verifier. Pure: no I/O. Verification uses node's synchronous `crypto.verify` with a cached
 * KeyObject, which runs at the hardware's speed (see ../shared/FACTS.md).
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { CLIENT_ID, KEY_ID } from './ids.ts';
import { ALGORITHMS, type Algorithm } from './model.ts';

/** Why a token was refused: a stable reason code, logged by the authorizer (never the token itself). */
export type DenyReason =
  | 'missing_token'
  | 'token_too_large'
  | 'malformed_token'
  | 'unsupported_alg'
  | 'unsupported_typ'
  | 'crit_not_supported'
  | 'missing_kid'
  | 'invalid_issuer'
  | 'subject_mismatch'
  | 'missing_claim'
  | 'invalid_claim'
  | 'unknown_client'
  | 'client_disabled'
  | 'unknown_key'
  | 'key_revoked'
  | 'key_expired'
  | 'algorithm_mismatch'
  | 'invalid_signature'
  | 'invalid_audience'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'issued_in_future'
  | 'lifetime_too_long'
  | 'scope_not_allowed';

/** A token refused for a reason; the message is safe to log and never holds token bytes. */
export class TokenRejectedError extends Error {
  override name = 'TokenRejectedError';
  constructor(readonly reason: DenyReason) {
    super(`client token refused: ${reason}`);
  }
}

/** The rules that depend on the deployment. */
export interface TokenPolicy {
  issuerBase: string;
  audiences: readonly string[];
  maxTokenLifetimeSeconds: number;
  clockSkewSeconds: number;
}

/** Tokens longer than this are refused without parsing (contract §3). */
export const MAX_TOKEN_BYTES = 8192;

/** A token whose structure, header and issuer have been checked; its signature and claims not yet. */
export interface DecodedToken {
  clientId: string;
  keyId: string;
  algorithm: Algorithm;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const ALLOWED_TYP = new Set(['JWT', 'at+jwt']);
/**
 * The JWS `alg` names a client token may carry, and the key algorithm each one means (contract §3): an Ed25519 key
 * signs as `EdDSA` or as its RFC 9864 fully-specified name `Ed25519` (what jose 6 and openid-client 6 write). The
 * token's name only has to match the stored key's algorithm; it never chooses how to verify.
 */
const JWS_ALGORITHMS: ReadonlyMap<string, Algorithm> = new Map<string, Algorithm>([
  ...ALGORITHMS.map((algorithm): [string, Algorithm] => [algorithm, algorithm]),
  ['Ed25519', 'EdDSA'],
]);

function reject(reason: DenyReason): never {
  throw new TokenRejectedError(reason);
}

/** The 6-bit value of a base64url character (the caller has checked the alphabet). */
function sextet(code: number): number {
  if (code >= 97) return code - 71; // a-z: 26..51
  if (code >= 65) return code === 95 ? 63 : code - 65; // A-Z: 0..25, '_': 63
  return code === 45 ? 62 : code + 4; // '-': 62, 0-9: 52..61
}

/**
 * Decodes a base64url segment, refusing padding and non-canonical encodings (two strings, one meaning): a length
 * of 1 mod 4 is impossible, and the unused low bits of the last character must be zero.
 */
export function decodeSegment(segment: string): Buffer {
  if (!BASE64URL.test(segment)) reject('malformed_token');
  const remainder = segment.length & 3;
  if (remainder === 1) reject('malformed_token');
  if (remainder !== 0 && (sextet(segment.charCodeAt(segment.length - 1)) & (remainder === 2 ? 0x0f : 0x03)) !== 0)
    reject('malformed_token');
  return Buffer.from(segment, 'base64url');
}

function decodeJsonObject(segment: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeSegment(segment).toString('utf8'));
  } catch (error) {
    if (error instanceof TokenRejectedError) throw error;
    reject('malformed_token');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) reject('malformed_token');
  return value as Record<string, unknown>;
}

/** The issuer a client's tokens must carry. */
export const issuerOf = (issuerBase: string, clientId: string): string => `${issuerBase}/v1/clients/${clientId}`;

/** How {@link decodeClientToken} reads `iss`. */
export interface DecodeOptions {
  /** Also accept `iss` = the bare clientId (RFC 7523 §3 assertions at the token endpoint, contract §9). */
  bareIssuer?: boolean;
}

/**
 * Checks a token's structure, header and issuer, and says which client and key it claims.
 * Header members `jku`, `x5u`, `jwk` and `x5c` are ignored: keys are only ever found by `kid` in Keysmith's store.
 */
export function decodeClientToken(token: string, issuerBase: string, options: DecodeOptions = {}): DecodedToken {
  if (token.length === 0) reject('missing_token');
  if (token.length > MAX_TOKEN_BYTES) reject('token_too_large');
  const firstDot = token.indexOf('.');
  const secondDot = firstDot < 0 ? -1 : token.indexOf('.', firstDot + 1);
  if (secondDot < 0 || token.indexOf('.', secondDot + 1) >= 0) reject('malformed_token');
  const headerSegment = token.slice(0, firstDot);

  let header = headerCache.get(headerSegment);
  if (header === undefined) {
    header = checkHeader(headerSegment);
    // Headers repeat (one per key), so their checked form is memoized; the map is bounded by clearing it.
    if (headerCache.size >= HEADER_CACHE_SIZE) headerCache.clear();
    headerCache.set(headerSegment, header);
  }

  const payload = decodeJsonObject(token.slice(firstDot + 1, secondDot));
  const iss = payload.iss;
  const prefix = `${issuerBase}/v1/clients/`;
  if (typeof iss !== 'string') reject('invalid_issuer');
  const bare = options.bareIssuer === true && CLIENT_ID.test(iss);
  if (!bare && !iss.startsWith(prefix)) reject('invalid_issuer');
  const clientId = bare ? iss : iss.slice(prefix.length);
  if (!CLIENT_ID.test(clientId)) reject('invalid_issuer');
  if (payload.sub !== clientId) reject('subject_mismatch');

  return {
    clientId,
    keyId: header.keyId,
    algorithm: header.algorithm,
    payload,
    signingInput: token.slice(0, secondDot),
    signature: decodeSegment(token.slice(secondDot + 1)),
  };
}

/** A header that passed {@link checkHeader}: all a token's header decides. */
interface CheckedHeader {
  algorithm: Algorithm;
  keyId: string;
}

const HEADER_CACHE_SIZE = 1024;
const headerCache = new Map<string, CheckedHeader>();

/** Checks a header segment (a pure function of it, so its result can be memoized). */
function checkHeader(headerSegment: string): CheckedHeader {
  const header = decodeJsonObject(headerSegment);
  const algorithm = typeof header.alg === 'string' ? JWS_ALGORITHMS.get(header.alg) : undefined;
  if (algorithm === undefined) reject('unsupported_alg');
  if (header.typ !== undefined && (typeof header.typ !== 'string' || !ALLOWED_TYP.has(header.typ))) reject('unsupported_typ');
  if (header.crit !== undefined) reject('crit_not_supported');
  if (header.b64 !== undefined) reject('crit_not_supported');
  const kid = header.kid;
  if (typeof kid !== 'string' || !KEY_ID.test(kid)) reject('missing_kid');
  return { algorithm, keyId: kid };
}

/** Verifies the JWS signature with the key's own algorithm (the token's `alg` has already been matched to it). */
export function verifySignature(algorithm: Algorithm, key: KeyObject, signingInput: string, signature: Buffer): boolean {
  const data = Buffer.from(signingInput);
  try {
    switch (algorithm) {
      case 'EdDSA':
        return signature.length === 64 && cryptoVerify(null, data, key, signature);
      case 'ES256':
        return signature.length === 64 && cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'RS256':
        return cryptoVerify('sha256', data, key, signature);
    }
  } catch {
    return false;
  }
}

const isNumericDate = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/**
 * Checks the time claims (`exp`, `iat` required; `nbf` honoured; lifetime bounded; clock skew allowed) and the
 * audience. Needs no key, so the authorizer runs it before any I/O: an expired or misdirected token costs no read.
 */
export function checkTimeAndAudience(payload: Record<string, unknown>, policy: TokenPolicy, nowSeconds: number): void {
  const { exp, iat, nbf, aud } = payload;
  if (exp === undefined || iat === undefined) reject('missing_claim');
  if (!isNumericDate(exp) || !isNumericDate(iat)) reject('invalid_claim');
  if (nbf !== undefined && !isNumericDate(nbf)) reject('invalid_claim');
  const skew = policy.clockSkewSeconds;
  if (exp <= nowSeconds - skew) reject('token_expired');
  if (iat > nowSeconds + skew) reject('issued_in_future');
  if (nbf !== undefined && nbf > nowSeconds + skew) reject('token_not_yet_valid');
  if (exp <= iat) reject('invalid_claim');
  if (exp - iat > policy.maxTokenLifetimeSeconds) reject('lifetime_too_long');

  if (typeof aud === 'string') {
    if (!policy.audiences.includes(aud)) reject('invalid_audience');
    return;
  }
  if (!Array.isArray(aud) || aud.length === 0) reject('invalid_audience');
  let allowed = false;
  for (const a of aud) {
    if (typeof a !== 'string') reject('invalid_audience');
    if (policy.audiences.includes(a)) allowed = true;
  }
  if (!allowed) reject('invalid_audience');
}

/**
 * The scopes a token grants: its `scope` (space-separated), which must be a subset of the client's, without
 * duplicates; or all the client's scopes when absent.
 */
export function grantedScopes(payload: Record<string, unknown>, clientScopes: readonly string[]): string[] {
  const scope = payload.scope;
  if (scope === undefined) return [...clientScopes];
  if (typeof scope !== 'string') reject('invalid_claim');
  const requested = scope.split(' ').filter((s) => s.length > 0);
  if (requested.length === 0) reject('invalid_claim');
  for (const s of requested) if (!clientScopes.includes(s)) reject('scope_not_allowed');
  return [...new Set(requested)];
}

/**
 * Checks the time, audience and scope claims and returns the scopes the token grants
 * (its `scope`, which must be a subset of the client's; or all the client's scopes when absent).
 */
export function checkClaims(
  payload: Record<string, unknown>,
  policy: TokenPolicy,
  clientScopes: readonly string[],
  nowSeconds: number,
): string[] {
  checkTimeAndAudience(payload, policy, nowSeconds);
  return grantedScopes(payload, clientScopes);
}
