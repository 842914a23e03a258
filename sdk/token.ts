/**
 * Minting client tokens (contract §3) from an access key. Needs no AWS SDK: node's crypto and jose only.
 */
import { SignJWT } from 'jose';
import { type ParsedAccessKey, parseAccessKey } from '#shared/access-key.ts';
import { issuerOf } from '#shared/token-policy.ts';

/** Options of {@link mintToken}. */
export interface MintOptions {
  /** The deployment's public base URL (no trailing slash needed). */
  issuerBase: string;
  /** The audience the protected API expects. @default issuerBase */
  audience?: string;
  /** Token lifetime in seconds. @default 300 */
  lifetimeSeconds?: number;
  /** Space-separated scopes to narrow the token to (a subset of the client's). @default all the client's scopes */
  scope?: string;
  /** A `jti` claim: required (and single-use) in a token endpoint's assertion. @default none */
  jti?: string;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

/** A signed token and when it expires (epoch seconds). */
export interface MintedToken {
  token: string;
  /** `iat`, epoch seconds. */
  issuedAt: number;
  /** `exp`, epoch seconds. */
  expiresAt: number;
}

/** The default token lifetime, in seconds. */
export const DEFAULT_LIFETIME_SECONDS = 300;

/** Signs a client token with a parsed access key, with the key's own algorithm. */
export async function signToken(key: ParsedAccessKey, options: MintOptions): Promise<MintedToken> {
  const lifetime = options.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
  if (!Number.isInteger(lifetime) || lifetime < 1) throw new RangeError('lifetimeSeconds must be a positive whole number');
  const issuerBase = options.issuerBase.replace(/\/+$/, '');
  const iat = Math.floor((options.now ?? Date.now)() / 1000);
  const exp = iat + lifetime;
  const jwt = new SignJWT(options.scope ? { scope: options.scope } : {})
    .setProtectedHeader({ alg: key.algorithm, kid: key.keyId, typ: 'JWT' })
    .setIssuer(issuerOf(issuerBase, key.clientId))
    .setSubject(key.clientId)
    .setAudience(options.audience ?? issuerBase)
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (options.jti !== undefined) jwt.setJti(options.jti);
  return { token: await jwt.sign(key.privateKey), issuedAt: iat, expiresAt: exp };
}

/** Parses an access key and signs a client token with it. Errors never contain the key. */
export async function mintToken(accessKey: string, options: MintOptions): Promise<MintedToken> {
  return signToken(parseAccessKey(accessKey), options);
}
