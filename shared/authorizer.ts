/**
 * The authorizer's core, free of API Gateway: a client token in, an allow with the caller's identity or a
 * deny with a reason out. Store failures are thrown, never turned into an allow (fail closed).
 *
 * Caches, all per warm container and bounded (LRU):
 * - clients with their keys (KeyObjects imported once), positive and negative, for the revocation bound;
 *   concurrent misses for one client share one DynamoDB request;
 * - tokens already verified, by SHA-256, until the earliest of their expiry, their key's expiry and the
 *   expiry of the client entry they were verified against, so a cached token never outlives revocation.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { publicKeyObject } from './access-key.ts';
import type { Algorithm, CallerIdentity, ClientWithKeys } from './model.ts';
import {
  checkClaims,
  type DenyReason,
  decodeClientToken,
  type TokenPolicy,
  TokenRejectedError,
  verifySignature,
} from './token-policy.ts';

/** Where the authorizer reads a client and its keys: one request per call. */
export interface KeyDirectory {
  getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined>;
}

export type AuthorizationResult = { allow: true; identity: CallerIdentity } | { allow: false; reason: DenyReason };

/** Options of {@link Authorizer}. */
export interface AuthorizerOptions {
  directory: KeyDirectory;
  policy: TokenPolicy;
  /** How long a client's state is trusted, in seconds: the revocation bound. */
  revocationSeconds: number;
  /** Clients (and unknown clientIds) kept in memory. @default 10000 */
  maxCachedClients?: number;
  /** Verified tokens kept in memory. @default 10000 */
  maxCachedTokens?: number;
  /** A known client is re-read for an unknown kid at most this often, so a new key works at once. @default 1000 */
  unknownKeyRefreshMs?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

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
}

interface TokenEntry {
  identity: CallerIdentity;
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

function toState(found: ClientWithKeys): ClientState {
  const keys = new Map<string, CachedKey>();
  for (const k of found.keys) {
    keys.set(k.keyId, {
      algorithm: k.algorithm,
      key: publicKeyObject(k.publicKey),
      revoked: k.status !== 'active',
      expiresAtMs: k.expiresAt ? Date.parse(k.expiresAt) : Number.POSITIVE_INFINITY,
    });
  }
  const { clientId, tenantId, enabled, scopes } = found.client;
  return { clientId, tenantId, enabled, scopes, keys };
}

export class Authorizer {
  private readonly directory: KeyDirectory;
  private readonly policy: TokenPolicy;
  private readonly ttlMs: number;
  private readonly unknownKeyRefreshMs: number;
  private readonly now: () => number;
  private readonly clients: Lru<string, ClientEntry>;
  private readonly tokens: Lru<string, TokenEntry>;
  private readonly inFlight = new Map<string, Promise<ClientEntry>>();

  constructor(options: AuthorizerOptions) {
    this.directory = options.directory;
    this.policy = options.policy;
    this.ttlMs = options.revocationSeconds * 1000;
    this.unknownKeyRefreshMs = options.unknownKeyRefreshMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.clients = new Lru(options.maxCachedClients ?? 10_000);
    this.tokens = new Lru(options.maxCachedTokens ?? 10_000);
  }

  /** Decides on a bearer token. Throws only when the decision cannot be made (the store failed). */
  async authorize(token: string): Promise<AuthorizationResult> {
    const now = this.now();
    const tokenKey = createHash('sha256').update(token).digest('base64url');
    const cached = this.tokens.get(tokenKey);
    if (cached) {
      if (cached.validUntil > now) return { allow: true, identity: cached.identity };
      this.tokens.delete(tokenKey);
    }
    try {
      const decoded = decodeClientToken(token, this.policy.issuerBase);
      let entry = await this.clientEntry(decoded.clientId, now);
      if (entry.state && !entry.state.keys.has(decoded.keyId) && now - entry.loadedAt >= this.unknownKeyRefreshMs)
        entry = await this.load(decoded.clientId);
      const state = entry.state;
      if (!state) return { allow: false, reason: 'unknown_client' };
      if (!state.enabled) return { allow: false, reason: 'client_disabled' };
      const key = state.keys.get(decoded.keyId);
      if (!key) return { allow: false, reason: 'unknown_key' };
      if (key.revoked) return { allow: false, reason: 'key_revoked' };
      if (key.expiresAtMs <= now) return { allow: false, reason: 'key_expired' };
      if (decoded.algorithm !== key.algorithm) return { allow: false, reason: 'algorithm_mismatch' };
      if (!verifySignature(key.algorithm, key.key, decoded.signingInput, decoded.signature))
        return { allow: false, reason: 'invalid_signature' };
      const scopes = checkClaims(decoded.payload, this.policy, state.scopes, Math.floor(now / 1000));
      const identity: CallerIdentity = { clientId: state.clientId, tenantId: state.tenantId, keyId: decoded.keyId, scopes };
      const exp = decoded.payload.exp as number;
      this.tokens.set(tokenKey, {
        identity,
        validUntil: Math.min((exp + this.policy.clockSkewSeconds) * 1000, key.expiresAtMs, entry.expiresAt),
      });
      return { allow: true, identity };
    } catch (error) {
      if (error instanceof TokenRejectedError) return { allow: false, reason: error.reason };
      throw error;
    }
  }

  private async clientEntry(clientId: string, now: number): Promise<ClientEntry> {
    const entry = this.clients.get(clientId);
    if (entry && entry.expiresAt > now) return entry;
    return this.load(clientId);
  }

  /** Reads a client from the store; concurrent calls for one client share one request. */
  private load(clientId: string): Promise<ClientEntry> {
    const pending = this.inFlight.get(clientId);
    if (pending) return pending;
    const loading = (async () => {
      try {
        const loadedAt = this.now();
        const found = await this.directory.getClientWithKeys(clientId);
        const entry: ClientEntry = { state: found ? toState(found) : undefined, loadedAt, expiresAt: loadedAt + this.ttlMs };
        this.clients.set(clientId, entry);
        return entry;
      } finally {
        this.inFlight.delete(clientId);
      }
    })();
    this.inFlight.set(clientId, loading);
    return loading;
  }

  /** How many clients and tokens are cached (for tests and benchmarks). */
  cacheSizes(): { clients: number; tokens: number } {
    return { clients: this.clients.size, tokens: this.tokens.size };
  }
}
