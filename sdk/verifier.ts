/**
 * Verifies client tokens in a service that is not behind Keysmith's API Gateway authorizer (Express, Fastify,
 * a plain handler). It finds each client's public keys through the client's OpenID discovery document and
 * applies the same token rules as the authorizer, from shared/token-policy.ts. Needs no AWS SDK.
 *
 * Known clients' keys live in one bounded LRU, clients Keysmith answered 404 for in another, so a flood of tokens
 * naming unknown clientIds can never evict a real client. Fetches for clients not in the first cache share one
 * token bucket across clients: past it such a token gets a {@link KeyDiscoveryError} (answer 503), never a fetch.
 * Documents are size-limited while they stream.
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
  /**
   * Clients Keysmith answered 404 for, remembered apart from the clients above (least recently used are dropped), so
   * that unknown clientIds never evict known ones. Each is refused as `unknown_client` for `cacheSeconds`, without a
   * fetch. @default 10000
   */
  maxUnknownClients?: number;
  /**
   * Discovery fetches per second, shared by every client not in the cache of known clients (burst: the same number,
   * at least 1). Past it a token of such a client gets a {@link KeyDiscoveryError}, not a fetch. Known clients'
   * refreshes are not counted, so they keep working during a flood of unknown clientIds. @default 10
   */
  maxDiscoveryFetchesPerSecond?: number;
  /** A known client is re-fetched for an unknown kid at most this often, in seconds. @default 5 */
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

/** Puts `key` last in a Map used as an LRU, dropping the least recently used entries beyond `max`. */
function touch<V>(lru: Map<string, V>, key: string, value: V, max: number): void {
  lru.delete(key);
  lru.set(key, value);
  while (lru.size > max) lru.delete(lru.keys().next().value as string);
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
 * `cacheSeconds` (so a revoked key stops working within that bound), in a bounded LRU; unknown clients in a
 * second bounded LRU; concurrent misses for one client share one fetch, and fetches for clients not yet known
 * are rate-limited across clients.
 */
export class ClientTokenVerifier {
  private readonly policy: TokenPolicy;
  private readonly cacheMs: number;
  private readonly maxCachedClients: number;
  private readonly maxUnknownClients: number;
  private readonly unknownKeyRefreshMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  /** Known clients (their keys), least recently used first. */
  private readonly cache = new Map<string, ClientKeys>();
  /** Clients Keysmith answered 404 for (`keys` undefined), least recently used first. */
  private readonly unknownCache = new Map<string, ClientKeys>();
  private readonly inFlight = new Map<string, Promise<ClientKeys>>();
  /** The token bucket of fetches for clients not in `cache`: per ms, capacity, level, and when it was last filled. */
  private readonly discoveryRatePerMs: number;
  private readonly discoveryBurst: number;
  private discoveryTokens: number;
  private discoveryFilledAt: number;

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
    this.maxUnknownClients = options.maxUnknownClients ?? 10_000;
    const rate = options.maxDiscoveryFetchesPerSecond ?? 10;
    if (!(rate > 0)) throw new TypeError('maxDiscoveryFetchesPerSecond must be a positive number');
    this.unknownKeyRefreshMs = (options.unknownKeyRefreshSeconds ?? 5) * 1000;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? 5000;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.discoveryRatePerMs = rate / 1000;
    this.discoveryBurst = Math.max(1, rate);
    this.discoveryTokens = this.discoveryBurst;
    this.discoveryFilledAt = this.now();
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
    // Only a known client is re-fetched for an unknown kid; an unknown client stays unknown for cacheSeconds.
    if (entry.keys && !entry.keys.has(keyId) && this.now() - entry.fetchedAt >= this.unknownKeyRefreshMs)
      entry = await this.clientKeys(clientId, true);
    if (!entry.keys) return reject('unknown_client');
    return entry.keys.get(keyId) ?? reject('unknown_key');
  }

  private async clientKeys(clientId: string, refresh: boolean): Promise<ClientKeys> {
    const now = this.now();
    const known = this.cache.get(clientId);
    if (known) {
      if (!refresh && now - known.fetchedAt < this.cacheMs) {
        touch(this.cache, clientId, known, this.maxCachedClients);
        return known;
      }
      // A known client's refresh (expired, or an unknown kid) is not rate-limited.
      return this.fetchShared(clientId);
    }
    const unknown = this.unknownCache.get(clientId);
    if (unknown) {
      if (now - unknown.fetchedAt < this.cacheMs) {
        touch(this.unknownCache, clientId, unknown, this.maxUnknownClients);
        return unknown;
      }
      this.unknownCache.delete(clientId);
    }
    const pending = this.inFlight.get(clientId);
    if (pending) return pending;
    if (!this.takeDiscoveryToken(now))
      throw new KeyDiscoveryError('discovery rate limit reached for unknown clients; retry shortly');
    return this.fetchShared(clientId);
  }

  /** Takes one fetch from the token bucket of clients not yet known; false when it is empty. */
  private takeDiscoveryToken(now: number): boolean {
    const elapsed = now - this.discoveryFilledAt;
    if (elapsed > 0)
      this.discoveryTokens = Math.min(this.discoveryBurst, this.discoveryTokens + elapsed * this.discoveryRatePerMs);
    this.discoveryFilledAt = now;
    if (this.discoveryTokens < 1) return false;
    this.discoveryTokens -= 1;
    return true;
  }

  /** The client's keys from one fetch shared by concurrent callers, remembered in the cache its answer belongs to. */
  private fetchShared(clientId: string): Promise<ClientKeys> {
    let pending = this.inFlight.get(clientId);
    if (!pending) {
      pending = this.discover(clientId)
        .then((entry) => {
          if (entry.keys) {
            this.unknownCache.delete(clientId);
            touch(this.cache, clientId, entry, this.maxCachedClients);
          } else {
            this.cache.delete(clientId);
            touch(this.unknownCache, clientId, entry, this.maxUnknownClients);
          }
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
    const text = await readLimited(url, response);
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

/**
 * A response body as text, refused as soon as it is larger than MAX_DOCUMENT_BYTES: by its content-length before
 * reading, or while streaming (the stream is then cancelled, never read to its end). Decoded as UTF-8 once, at the end.
 */
async function readLimited(url: string, response: Response): Promise<string> {
  const tooLarge = () => new KeyDiscoveryError(`${url} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  const declared = response.headers.get('content-length');
  if (declared !== null && Number(declared) > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_DOCUMENT_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof KeyDiscoveryError) throw error;
    throw new KeyDiscoveryError(`reading ${url} failed: ${(error as Error).message}`);
  } finally {
    reader.releaseLock();
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(body);
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
