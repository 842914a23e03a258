/**
 * The authorizer's core, free of API Gateway: a client token in, an allow with the caller's identity or a
 * deny with a reason out. Directory failures are thrown, never turned into an allow (fail closed).
 *
 * Caches, all per warm container and LRU-bounded:
 * - known clients with their keys (KeyObjects imported once), trusted for `revocationSeconds` from the moment
 *   the read was sent: the revocation bound;
 * - unknown clientIds, negatively, for the same time, in their own LRU so a flood of them cannot evict known clients;
 * - unknown kids of a known client: the client is re-read at most once per `unknownKeyRefreshMs`, so a new key
 *   works at once and a flood of random kids costs at most one read per client per interval;
 * - concurrent misses for one client share one request;
 * - verified tokens, by SHA-256, until the earliest of their expiry (plus skew), their key's expiry and the
 *   expiry of the client state they were verified against. A token is also dropped as soon as a newer state of
 *   its client is loaded, so a cached token never outlives the client state that allowed it.
 */
import { hash, type KeyObject } from 'node:crypto';
import { algorithmOfKey, publicKeyObject, publicKeyWeakness } from './access-key.ts';
import { AccessTokenVerifier, checkedKid, type IssuerKey, looksLikeAccessToken } from './access-token.ts';
import { accessDenied } from './errors.ts';
import type { Algorithm, CallerIdentity, ClientWithKeys } from './model.ts';
import {
  checkTimeAndAudience,
  type DecodedToken,
  type DenyReason,
  decodeClientToken,
  grantedScopes,
  MAX_TOKEN_BYTES,
  type TokenPolicy,
  TokenRejectedError,
  verifySignature,
} from './token-policy.ts';

/** Where the authorizer reads a client and its keys: one request per call. */
export interface KeyDirectory {
  getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined>;
}

export type AuthorizationResult = { allow: true; identity: CallerIdentity } | { allow: false; reason: DenyReason };

/** Why the authorizer could not decide (logged by the handler, which then fails closed). */
export type UnavailableReason = 'directory_throttled' | 'directory_timeout' | 'directory_error' | 'access_denied';

/** The directory failed or did not answer in time: no decision is possible. Carries no token or key material. */
export class AuthorizerUnavailableError extends Error {
  override name = 'AuthorizerUnavailableError';
  constructor(
    readonly reason: UnavailableReason,
    /** The name of the underlying error (e.g. `ThrottlingException`), never its message. */
    readonly causeName: string,
    /** For `access_denied`: the IAM action the role lacks (e.g. `kms:VerifyMac`). */
    readonly action?: string,
  ) {
    super(`authorizer unavailable: ${reason}`);
  }
}

/** Options of {@link Authorizer}. */
export interface AuthorizerOptions {
  directory: KeyDirectory;
  policy: TokenPolicy;
  /** How long a client's state is trusted, in seconds: the revocation bound. */
  revocationSeconds: number;
  /** Known clients kept in memory. @default 10000 */
  maxCachedClients?: number;
  /** Unknown clientIds remembered (negative cache). @default 10000 */
  maxUnknownClients?: number;
  /** Verified tokens kept in memory. @default 10000 */
  maxCachedTokens?: number;
  /** A known client is re-read for an unknown kid at most this often, so a new key works at once. @default 1000 */
  unknownKeyRefreshMs?: number;
  /** A directory read taking longer than this fails (closed). @default 3000 */
  directoryTimeoutMs?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
  /**
   * The deployment's token-signing public keys (contract §9), loaded once per container: with them the authorizer
   * also accepts Keysmith access tokens, verified by signature alone (no directory read). Absent: it accepts none.
   */
  issuerKeys?: () => Promise<readonly IssuerKey[]>;
  /** The longest access-token lifetime accepted, in seconds. @default 3600 */
  maxAccessTokenSeconds?: number;
  /**
   * Told of every client token allowed (cached or not) with the key that signed it, to record when keys were last used
   * (contract §11). It must not wait or throw; if it throws anyway, the allow stands. @default nothing
   */
  onKeyUsed?: (clientId: string, keyId: string) => void;
}

/** The identity as the authorizer's context carries it (contract §4): all values strings, scopes space-separated. */
export const identityContext = (
  identity: CallerIdentity,
): { clientId: string; tenantId: string; keyId: string; scopes: string } => ({
  clientId: identity.clientId,
  tenantId: identity.tenantId,
  keyId: identity.keyId,
  scopes: identity.scopes.join(' '),
});

interface CachedKey {
  algorithm: Algorithm;
  key: KeyObject;
  revoked: boolean;
  expiresAtMs: number;
}

interface ClientState {
  clientId: string;
  tenantId: string;
  enabled: boolean;
  scopes: string[];
  keys: Map<string, CachedKey>;
}

interface ClientEntry {
  /** undefined: no such client (negative entry). */
  state: ClientState | undefined;
  loadedAt: number;
  expiresAt: number;
  /** Set when a newer state of the client has been loaded: tokens verified against this one are dropped. */
  superseded: boolean;
}

interface TokenEntry {
  result: AuthorizationResult;
  entry: ClientEntry;
  validUntil: number;
}

/** A Map used as an LRU: reads move an entry to the back, inserts past the bound drop the front. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }
  delete(key: K): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

/** How long a failure to load the issuer's keys is repeated before they are asked for again. */
const ISSUER_KEY_RETRY_MS = 1000;

const deny = (reason: DenyReason): AuthorizationResult => ({ allow: false, reason });

/** The client entry a cached access token hangs on: never superseded, since no client state allowed it. */
const ACCESS_TOKEN_ENTRY: ClientEntry = Object.freeze({
  state: undefined,
  loadedAt: 0,
  expiresAt: Number.POSITIVE_INFINITY,
  superseded: false,
}) as ClientEntry;

function toState(found: ClientWithKeys): ClientState {
  const keys = new Map<string, CachedKey>();
  for (const k of found.keys) {
    const key = publicKeyObject(k.publicKey);
    // A stored algorithm that does not follow from the key itself is an inconsistent record: never verify with it.
    if (algorithmOfKey(key) !== k.algorithm) throw new Error('stored key algorithm does not match its key');
    // A weak key (small-order point, RSA e != 65537) could have been stored before it was refused: never trust it.
    if (publicKeyWeakness(key)) continue;
    keys.set(k.keyId, {
      algorithm: k.algorithm,
      key,
      revoked: k.status !== 'active',
      expiresAtMs: k.expiresAt ? Date.parse(k.expiresAt) : Number.POSITIVE_INFINITY,
    });
  }
  const { clientId, tenantId, enabled, scopes } = found.client;
  return { clientId, tenantId, enabled, scopes: [...scopes], keys };
}

const THROTTLING = new Set([
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
]);

function unavailable(error: unknown): AuthorizerUnavailableError {
  if (error instanceof AuthorizerUnavailableError) return error;
  const name = typeof (error as Error)?.name === 'string' ? (error as Error).name : 'Unknown';
  // A missing permission is a deployment fault, not an outage: say which action, so an operator can fix the role.
  const denied = accessDenied(error, 'unknown');
  if (denied) return new AuthorizerUnavailableError('access_denied', name, denied.action);
  if (THROTTLING.has(name)) return new AuthorizerUnavailableError('directory_throttled', name);
  if (/timeout|timedout|abort/i.test(name) || (error as { code?: string })?.code === 'ETIMEDOUT')
    return new AuthorizerUnavailableError('directory_timeout', name);
  return new AuthorizerUnavailableError('directory_error', name);
}

export class Authorizer {
  private readonly directory: KeyDirectory;
  private readonly policy: TokenPolicy;
  private readonly ttlMs: number;
  private readonly unknownKeyRefreshMs: number;
  private readonly directoryTimeoutMs: number;
  private readonly now: () => number;
  private readonly clients: Lru<string, ClientEntry>;
  private readonly unknownClients: Lru<string, ClientEntry>;
  private readonly tokens: Lru<string, TokenEntry>;
  private readonly inFlight = new Map<string, Promise<ClientEntry>>();
  private readonly issuerKeys: (() => Promise<readonly IssuerKey[]>) | undefined;
  private issuerKeyMap: Promise<ReadonlyMap<string, KeyObject>> | undefined;
  /** The last failure to load the issuer's keys, and when: repeated within a second without asking again. */
  private issuerKeyFailure: { error: AuthorizerUnavailableError; at: number } | undefined;
  private readonly accessTokens: AccessTokenVerifier;
  private readonly onKeyUsed: ((clientId: string, keyId: string) => void) | undefined;

  constructor(options: AuthorizerOptions) {
    this.onKeyUsed = options.onKeyUsed;
    this.directory = options.directory;
    this.policy = options.policy;
    this.ttlMs = options.revocationSeconds * 1000;
    this.unknownKeyRefreshMs = options.unknownKeyRefreshMs ?? 1000;
    this.directoryTimeoutMs = options.directoryTimeoutMs ?? 3000;
    this.now = options.now ?? Date.now;
    this.clients = new Lru(options.maxCachedClients ?? 10_000);
    this.unknownClients = new Lru(options.maxUnknownClients ?? 10_000);
    this.tokens = new Lru(options.maxCachedTokens ?? 10_000);
    this.issuerKeys = options.issuerKeys;
    this.accessTokens = new AccessTokenVerifier({
      issuerBase: options.policy.issuerBase,
      audiences: options.policy.audiences,
      clockSkewSeconds: options.policy.clockSkewSeconds,
      ...(options.maxAccessTokenSeconds ? { maxLifetimeSeconds: options.maxAccessTokenSeconds } : {}),
    });
  }

  /**
   * Decides on a bearer token. Throws {@link AuthorizerUnavailableError} only when no decision can be made
   * (the directory failed or timed out); never allows in that case.
   */
  async authorize(token: string): Promise<AuthorizationResult> {
    if (token.length === 0) return deny('missing_token');
    if (token.length > MAX_TOKEN_BYTES) return deny('token_too_large');
    let now = this.now();
    // One-shot hash: several times cheaper than createHash() on this path.
    const tokenKey = hash('sha256', token, 'base64');
    const cached = this.tokens.get(tokenKey);
    if (cached !== undefined) {
      if (cached.validUntil > now && !cached.entry.superseded) {
        if (cached.entry !== ACCESS_TOKEN_ENTRY) this.used(cached.result);
        return cached.result;
      }
      this.tokens.delete(tokenKey);
    }

    // An access token's kid is a thumbprint, never a keyId: told apart by its (memoized) header alone.
    if (looksLikeAccessToken(token)) return this.authorizeAccessToken(token, tokenKey);

    let decoded: DecodedToken;
    try {
      decoded = decodeClientToken(token, this.policy.issuerBase);
      // Claims that need no key are checked before any read: an expired or misdirected token costs no I/O.
      checkTimeAndAudience(decoded.payload, this.policy, Math.floor(now / 1000));
    } catch (error) {
      if (error instanceof TokenRejectedError) return deny(error.reason);
      throw error;
    }

    const cachedEntry = this.cachedEntry(decoded.clientId, now);
    const read =
      cachedEntry === undefined ||
      (cachedEntry.state !== undefined &&
        !cachedEntry.state.keys.has(decoded.keyId) &&
        now - cachedEntry.loadedAt >= this.unknownKeyRefreshMs);
    let entry: ClientEntry;
    if (read) {
      entry = await this.load(decoded.clientId);
      now = this.now();
    } else entry = cachedEntry;

    const state = entry.state;
    if (!state) return deny('unknown_client');
    if (!state.enabled) return deny('client_disabled');
    const key = state.keys.get(decoded.keyId);
    if (!key) return deny('unknown_key');
    if (key.revoked) return deny('key_revoked');
    if (key.expiresAtMs <= now) return deny('key_expired');
    if (decoded.algorithm !== key.algorithm) return deny('algorithm_mismatch');
    if (!verifySignature(key.algorithm, key.key, decoded.signingInput, decoded.signature)) return deny('invalid_signature');
    let scopes: string[];
    try {
      // Time may have passed while the client was read.
      if (read) checkTimeAndAudience(decoded.payload, this.policy, Math.floor(now / 1000));
      scopes = grantedScopes(decoded.payload, state.scopes);
    } catch (error) {
      if (error instanceof TokenRejectedError) return deny(error.reason);
      throw error;
    }

    const identity: CallerIdentity = Object.freeze({
      clientId: state.clientId,
      tenantId: state.tenantId,
      keyId: decoded.keyId,
      scopes: Object.freeze(scopes) as string[],
    });
    const result: AuthorizationResult = Object.freeze({ allow: true, identity });
    const exp = decoded.payload.exp as number;
    const validUntil = Math.min((exp + this.policy.clockSkewSeconds) * 1000, key.expiresAtMs, entry.expiresAt);
    if (validUntil > now) this.tokens.set(tokenKey, { result, entry, validUntil });
    this.used(result);
    return result;
  }

  /** Tells the usage listener of an allowed client token; nothing it does can turn the allow into anything else. */
  private used(result: AuthorizationResult): void {
    if (!this.onKeyUsed || !result.allow) return;
    try {
      this.onKeyUsed(result.identity.clientId, result.identity.keyId);
    } catch {
      // The use goes unrecorded; the allow stands.
    }
  }

  /** An access token: its signature against the issuer's keys and its claims; no directory read. */
  private async authorizeAccessToken(token: string, tokenKey: string): Promise<AuthorizationResult> {
    if (!this.issuerKeys) return deny('unknown_key');
    let verified: ReturnType<AccessTokenVerifier['verify']>;
    let now: number;
    try {
      // The header rules first (memoized): an unsigned token with a made-up header never makes the keys load.
      checkedKid(token.slice(0, token.indexOf('.')));
      const keys = await this.loadIssuerKeys();
      now = this.now();
      verified = this.accessTokens.verify(token, keys, Math.floor(now / 1000));
    } catch (error) {
      if (error instanceof TokenRejectedError) return deny(error.reason);
      throw error;
    }
    const result: AuthorizationResult = Object.freeze({ allow: true, identity: verified.identity });
    // Never revoked before it expires (contract §9), so it is good until then; a client state never supersedes it.
    const validUntil = (verified.expiresAt + this.policy.clockSkewSeconds) * 1000;
    if (validUntil > now) this.tokens.set(tokenKey, { result, entry: ACCESS_TOKEN_ENTRY, validUntil });
    return result;
  }

  /**
   * The issuer's keys by kid, read once. A failed read fails closed and is not kept, but for a second its failure is
   * repeated without asking again, so a flood of access tokens during an outage is not a flood of key reads.
   */
  private loadIssuerKeys(): Promise<ReadonlyMap<string, KeyObject>> {
    const failure = this.issuerKeyFailure;
    if (failure && this.now() - failure.at < ISSUER_KEY_RETRY_MS) return Promise.reject(failure.error);
    this.issuerKeyMap ??= (async () => {
      const keys = await (this.issuerKeys as () => Promise<readonly IssuerKey[]>)();
      this.issuerKeyFailure = undefined;
      return new Map(keys.map((key) => [key.kid, key.publicKey]));
    })().catch((error: unknown) => {
      this.issuerKeyMap = undefined;
      const failed = unavailable(error);
      this.issuerKeyFailure = { error: failed, at: this.now() };
      throw failed;
    });
    return this.issuerKeyMap;
  }

  private cachedEntry(clientId: string, now: number): ClientEntry | undefined {
    const entry = this.clients.get(clientId) ?? this.unknownClients.get(clientId);
    return entry !== undefined && entry.expiresAt > now ? entry : undefined;
  }

  /** Reads a client from the directory; concurrent calls for one client share one request. */
  private load(clientId: string): Promise<ClientEntry> {
    const pending = this.inFlight.get(clientId);
    if (pending) return pending;
    // Trusted from before the read was sent: the data can only be newer than this.
    const loadedAt = this.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new AuthorizerUnavailableError('directory_timeout', 'AuthorizerTimeout')),
        this.directoryTimeoutMs,
      );
      timer.unref?.();
    });
    let read: Promise<ClientWithKeys | undefined>;
    try {
      read = this.directory.getClientWithKeys(clientId);
    } catch (error) {
      read = Promise.reject(error);
    }
    const loading = Promise.race([read, timeout])
      .then((found) => {
        const entry: ClientEntry = {
          state: found ? toState(found) : undefined,
          loadedAt,
          expiresAt: loadedAt + this.ttlMs,
          superseded: false,
        };
        const previous = this.clients.get(clientId) ?? this.unknownClients.get(clientId);
        if (previous) previous.superseded = true;
        if (entry.state) {
          this.unknownClients.delete(clientId);
          this.clients.set(clientId, entry);
        } else {
          this.clients.delete(clientId);
          this.unknownClients.set(clientId, entry);
        }
        return entry;
      })
      .catch((error: unknown) => {
        throw unavailable(error);
      })
      .finally(() => {
        clearTimeout(timer);
        this.inFlight.delete(clientId);
      });
    this.inFlight.set(clientId, loading);
    return loading;
  }

  /** How many clients, unknown clientIds and tokens are cached (for tests and benchmarks). */
  cacheSizes(): { clients: number; unknownClients: number; tokens: number } {
    return { clients: this.clients.size, unknownClients: this.unknownClients.size, tokens: this.tokens.size };
  }
}
