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
const ALGORITHM_SET: ReadonlySet<string> = new Set(ALGORITHMS);

function reject(reason: DenyReason): never {
  throw new TokenRejectedError(reason);
}

/** Decodes a base64url segment, refusing padding and non-canonical encodings (two strings, one meaning). */
function decodeSegment(segment: string): Buffer {
  if (!BASE64URL.test(segment)) reject('malformed_token');
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) reject('malformed_token');
  return bytes;
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

/**
 * Checks a token's structure, header and issuer, and says which client and key it claims.
 * Header members `jku`, `x5u`, `jwk` and `x5c` are ignored: keys are only ever found by `kid` in Keysmith's store.
 */
export function decodeClientToken(token: string, issuerBase: string): DecodedToken {
  if (token.length === 0) reject('missing_token');
  if (token.length > MAX_TOKEN_BYTES) reject('token_too_large');
  const segments = token.split('.');
  if (segments.length !== 3) reject('malformed_token');
  const [headerSegment, payloadSegment, signatureSegment] = segments as [string, string, string];

  const header = decodeJsonObject(headerSegment);
  const alg = header.alg;
  if (typeof alg !== 'string' || !ALGORITHM_SET.has(alg)) reject('unsupported_alg');
  if (header.typ !== undefined && (typeof header.typ !== 'string' || !ALLOWED_TYP.has(header.typ))) reject('unsupported_typ');
  if (header.crit !== undefined) reject('crit_not_supported');
  if (header.b64 !== undefined) reject('crit_not_supported');
  const kid = header.kid;
  if (typeof kid !== 'string' || !KEY_ID.test(kid)) reject('missing_kid');

  const payload = decodeJsonObject(payloadSegment);
  const iss = payload.iss;
  const prefix = `${issuerBase}/v1/clients/`;
  if (typeof iss !== 'string' || !iss.startsWith(prefix)) reject('invalid_issuer');
  const clientId = iss.slice(prefix.length);
  if (!CLIENT_ID.test(clientId)) reject('invalid_issuer');
  if (payload.sub !== clientId) reject('subject_mismatch');

  return {
    clientId,
    keyId: kid,
    algorithm: alg as Algorithm,
    payload,
    signingInput: `${headerSegment}.${payloadSegment}`,
    signature: decodeSegment(signatureSegment),
  };
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
 * Checks the time, audience and scope claims and returns the scopes the token grants
 * (its `scope`, which must be a subset of the client's; or all the client's scopes when absent).
 */
export function checkClaims(
  payload: Record<string, unknown>,
  policy: TokenPolicy,
  clientScopes: readonly string[],
  nowSeconds: number,
): string[] {
  const { exp, iat, nbf, aud, scope } = payload;
  if (exp === undefined || iat === undefined) reject('missing_claim');
  if (!isNumericDate(exp) || !isNumericDate(iat)) reject('invalid_claim');
  if (nbf !== undefined && !isNumericDate(nbf)) reject('invalid_claim');
  const skew = policy.clockSkewSeconds;
  if (exp <= nowSeconds - skew) reject('token_expired');
  if (iat > nowSeconds + skew) reject('issued_in_future');
  if (nbf !== undefined && nbf > nowSeconds + skew) reject('token_not_yet_valid');
  if (exp <= iat) reject('invalid_claim');
  if (exp - iat > policy.maxTokenLifetimeSeconds) reject('lifetime_too_long');

  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
  if (!audiences || audiences.length === 0 || !audiences.every((a) => typeof a === 'string')) reject('invalid_audience');
  if (!audiences.some((a) => policy.audiences.includes(a))) reject('invalid_audience');

  if (scope === undefined) return [...clientScopes];
  if (typeof scope !== 'string') reject('invalid_claim');
  const requested = scope.split(' ').filter((s) => s.length > 0);
  if (requested.length === 0) reject('invalid_claim');
  for (const s of requested) if (!clientScopes.includes(s)) reject('scope_not_allowed');
  return [...new Set(requested)];
}
