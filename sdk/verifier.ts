/**
 * Verifies client tokens in a service that is not behind Keysmith's API Gateway authorizer (Express, Fastify,
 * a plain handler). It finds each client's public keys through the client's OpenID discovery document and
 * applies the same token rules as the authorizer, from shared/token-policy.ts. Needs no AWS SDK.
 *
 * What it cannot check: the JWKS carries neither the client's scopes nor its tenant. So it returns the token's
 * own `scope` claim as `claimedScopes`: what the client asks for, not what it was granted (the "subset of the
 * client's scopes" rule is the authorizer's alone; any client can claim any scope here). Authorize by `clientId`;
 * use `claimedScopes` only to narrow what you grant. It returns no tenantId: a tenant comes only from the authorizer.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { algorithmOfKey, publicKeyWeakness } from '#shared/access-key.ts';
import { ALGORITHMS, type Algorithm } from '#shared/model.ts';
import {
  checkClaims,
  type DenyReason,
  decodeClientToken,
  issuerOf,
  type TokenPolicy,
  TokenRejectedError,
  verifySignature,
} from '#shared/token-policy.ts';

export { type DenyReason, TokenRejectedError };

/** Options of {@link ClientTokenVerifier}. */
export interface ClientTokenVerifierOptions {
  /** The Keysmith deployment's public base URL; tokens of any other issuer are refused. */
  issuerBase: string;
  /** The audiences this service accepts (a token must name one). */
  audiences: string | readonly string[];
  /** Longest allowed `exp - iat`, in seconds. @default 86400 */
  maxTokenLifetimeSeconds?: number;
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. @default 60 */
  clockSkewSeconds?: number;
  /** How long a client's keys are cached, in seconds: the revocation bound of this service. @default 60 */
  cacheSeconds?: number;
  /** Clients whose keys are kept in memory (least recently used are dropped). @default 1000 */
  maxCachedClients?: number;
  /** A cached client is re-fetched for an unknown kid (or unknown client) at most this often, in seconds. @default 5 */
  unknownKeyRefreshSeconds?: number;
  /** Timeout of one discovery or JWKS request, in ms. @default 5000 */
  fetchTimeoutMs?: number;
  /** The fetch used for discovery and JWKS (e.g. to route the issuer's host elsewhere). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

/** A token that passed every rule. */
export interface VerifiedClientToken {
  clientId: string;
  keyId: string;
  /**
   * The token's `scope` claim, split; empty when the token has none. Claimed by the client, not granted: never
   * authorize by it alone (the client's granted scopes are not published), only narrow what you grant its clientId.
   */
  claimedScopes: string[];
  /** The token's payload. */
  claims: Record<string, unknown>;
}

/** The client's discovery document or JWKS could not be fetched or was unusable: not the token's fault (answer 503). */
export class KeyDiscoveryError extends Error {
  override name = 'KeyDiscoveryError';
}

interface VerificationKey {
  algorithm: Algorithm;
  key: KeyObject;
}

interface ClientKeys {
  /** undefined: Keysmith does not know the client. */
  keys: Map<string, VerificationKey> | undefined;
  fetchedAt: number;
}

const MAX_DOCUMENT_BYTES = 64 * 1024;
const ALGORITHM_SET: ReadonlySet<string> = new Set(ALGORITHMS);
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

const reject = (reason: DenyReason): never => {
  throw new TokenRejectedError(reason);
};

/** The token of an `Authorization: Bearer <token>` header value, or undefined. */
export function bearerToken(header: string | null | undefined): string | undefined {
  const match = header ? /^Bearer +([^ ]+) *$/i.exec(header) : null;
  return match?.[1];
}

/**
 * Verifies client tokens against the keys each client publishes. Keys are cached per client for
 * `cacheSeconds` (so a revoked key stops working within that bound), in a bounded LRU; concurrent misses
 * for one client share one fetch.
 */
export class ClientTokenVerifier {
  private readonly policy: TokenPolicy;
  private readonly cacheMs: number;
  private readonly maxCachedClients: number;
  private readonly unknownKeyRefreshMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly cache = new Map<string, ClientKeys>();
  private readonly inFlight = new Map<string, Promise<ClientKeys>>();

  constructor(options: ClientTokenVerifierOptions) {
    const issuerBase = options.issuerBase.replace(/\/+$/, '');
    if (!/^https?:\/\/[^/?#]+(\/[^?#]*)?$/.test(issuerBase)) throw new TypeError('issuerBase must be an absolute http(s) URL');
    const audiences = typeof options.audiences === 'string' ? [options.audiences] : [...options.audiences];
    if (audiences.length === 0) throw new TypeError('audiences must name at least one audience');
    this.policy = {
      issuerBase,
      audiences,
      maxTokenLifetimeSeconds: options.maxTokenLifetimeSeconds ?? 86_400,
      clockSkewSeconds: options.clockSkewSeconds ?? 60,
    };
    this.cacheMs = (options.cacheSeconds ?? 60) * 1000;
    this.maxCachedClients = options.maxCachedClients ?? 1000;
    this.unknownKeyRefreshMs = (options.unknownKeyRefreshSeconds ?? 5) * 1000;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? 5000;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
  }

  /**
   * Verifies a client token. Throws {@link TokenRejectedError} (with its `reason`) for a token that breaks a
   * rule, and {@link KeyDiscoveryError} when the client's keys cannot be fetched.
   */
  async verify(token: string): Promise<VerifiedClientToken> {
    const decoded = decodeClientToken(token, this.policy.issuerBase);
    const { scope } = decoded.payload;
    // The JWKS has no client scopes: the token's own scopes stand in, so the subset rule cannot fail here.
    const tokenScopes = typeof scope === 'string' ? scope.split(' ').filter((s) => s.length > 0) : [];
    const scopes = checkClaims(decoded.payload, this.policy, tokenScopes, Math.floor(this.now() / 1000));
    const found = await this.keyFor(decoded.clientId, decoded.keyId);
    if (found.algorithm !== decoded.algorithm) reject('algorithm_mismatch');
    if (!verifySignature(found.algorithm, found.key, decoded.signingInput, decoded.signature)) reject('invalid_signature');
    return { clientId: decoded.clientId, keyId: decoded.keyId, claimedScopes: scopes, claims: decoded.payload };
  }

  /** Verifies the token of an `Authorization` header value (`Bearer <token>`). */
  async verifyAuthorization(header: string | null | undefined): Promise<VerifiedClientToken> {
    const token = bearerToken(header);
    if (!token) reject('missing_token');
    return this.verify(token as string);
  }

  private async keyFor(clientId: string, keyId: string): Promise<VerificationKey> {
    let entry = await this.clientKeys(clientId, false);
    if (!entry.keys?.has(keyId) && this.now() - entry.fetchedAt >= this.unknownKeyRefreshMs)
      entry = await this.clientKeys(clientId, true);
    if (!entry.keys) return reject('unknown_client');
    return entry.keys.get(keyId) ?? reject('unknown_key');
  }

  private async clientKeys(clientId: string, refresh: boolean): Promise<ClientKeys> {
    const cached = this.cache.get(clientId);
    if (cached && !refresh && this.now() - cached.fetchedAt < this.cacheMs) {
      this.cache.delete(clientId);
      this.cache.set(clientId, cached);
      return cached;
    }
    let pending = this.inFlight.get(clientId);
    if (!pending) {
      pending = this.discover(clientId)
        .then((entry) => {
          this.cache.delete(clientId);
          this.cache.set(clientId, entry);
          while (this.cache.size > this.maxCachedClients) this.cache.delete(this.cache.keys().next().value as string);
          return entry;
        })
        .finally(() => this.inFlight.delete(clientId));
      this.inFlight.set(clientId, pending);
    }
    return pending;
  }

  private async discover(clientId: string): Promise<ClientKeys> {
    const fetchedAt = this.now();
    const issuer = issuerOf(this.policy.issuerBase, clientId);
    const configuration = await this.getJson(`${issuer}/.well-known/openid-configuration`);
    if (!configuration) return { keys: undefined, fetchedAt };
    if (configuration.issuer !== issuer)
      throw new KeyDiscoveryError(`the discovery document of ${clientId} names another issuer`);
    const jwksUri = configuration.jwks_uri;
    if (typeof jwksUri !== 'string' || !this.underIssuerBase(jwksUri))
      throw new KeyDiscoveryError(`the jwks_uri of ${clientId} is not under the issuer base`);
    const jwks = await this.getJson(jwksUri);
    if (!jwks) return { keys: undefined, fetchedAt };
    if (!Array.isArray(jwks.keys)) throw new KeyDiscoveryError(`the JWKS of ${clientId} has no keys array`);
    const keys = new Map<string, VerificationKey>();
    for (const jwk of jwks.keys as unknown[]) {
      const usable = verificationKey(jwk);
      if (usable) keys.set(usable.kid, usable.key);
    }
    return { keys, fetchedAt };
  }

  private underIssuerBase(uri: string): boolean {
    let url: URL;
    let base: URL;
    try {
      url = new URL(uri);
      base = new URL(`${this.policy.issuerBase}/`);
    } catch {
      return false;
    }
    return url.origin === base.origin && !url.search && !url.hash && url.href.startsWith(base.href);
  }

  /** GETs a JSON object; undefined for a 404. Redirects are not followed: keys come only from the issuer base. */
  private async getJson(url: string): Promise<Record<string, unknown> | undefined> {
    let response: Response;
    try {
      response = await this.fetch(url, {
        headers: { accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(this.fetchTimeoutMs),
      });
    } catch (error) {
      throw new KeyDiscoveryError(`fetching ${url} failed: ${(error as Error).message}`);
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new KeyDiscoveryError(`fetching ${url} failed: HTTP ${response.status}`);
    }
    const text = await response.text();
    if (text.length > MAX_DOCUMENT_BYTES) throw new KeyDiscoveryError(`${url} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new KeyDiscoveryError(`${url} is not JSON`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new KeyDiscoveryError(`${url} is not a JSON object`);
    return value as Record<string, unknown>;
  }
}

/** A JWKS entry as a verification key, or undefined when it is not a public signing key of an allowed algorithm. */
function verificationKey(jwk: unknown): { kid: string; key: VerificationKey } | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined;
  const { kid, alg, use } = jwk as Record<string, unknown>;
  if (typeof kid !== 'string' || typeof alg !== 'string' || !ALGORITHM_SET.has(alg)) return undefined;
  if (use !== undefined && use !== 'sig') return undefined;
  if (PRIVATE_JWK_MEMBERS.some((member) => member in jwk)) return undefined;
  try {
    const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    // The JWK's alg must be the one its key implies (an RSA key is never used as anything but RS256, etc.).
    if (algorithmOfKey(key) !== alg || publicKeyWeakness(key)) return undefined;
    return { kid, key: { algorithm: alg as Algorithm, key } };
  } catch {
    return undefined;
  }
}
