/**
 * A cached source of tokens for a service client: client tokens it signs with its access key, or (mode
 * `access-token`) Keysmith access tokens from the deployment's token endpoint. It reuses the token, and renews it
 * well before it expires; concurrent callers share one renewal. Needs no AWS SDK.
 */
import { type ParsedAccessKey, parseAccessKey } from '#shared/access-key.ts';
import { requestAccessToken } from './access-token.ts';
import type { ClientIdentity } from './admin-types.ts';
import { DEFAULT_LIFETIME_SECONDS, type MintedToken, signToken } from './token.ts';

/** Options of {@link TokenProvider}. */
export interface TokenProviderOptions {
  /** The access key `{clientId}.{keyId}.{tenantId}.{privateKey}` (a secret; never logged or echoed). */
  accessKey: string;
  /** The deployment's public base URL, e.g. `https://keys.example.com`. */
  issuerBase: string;
  /**
   * `client-token`: sign client tokens (contract §3). `access-token`: get access tokens from the token endpoint
   * (contract §9), whose lifetime the endpoint decides (`lifetimeSeconds` is then unused).
   * @default 'client-token'
   */
  mode?: 'client-token' | 'access-token';
  /**
   * The audience the protected API expects. In `access-token` mode, the `resource` asked for.
   * @default issuerBase (client tokens); the deployment's first audience (access tokens)
   */
  audience?: string;
  /** The fetch of the token endpoint (`access-token` mode). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Space-separated scopes to narrow tokens to (a subset of the client's). @default all the client's scopes */
  scope?: string;
  /** Token lifetime in seconds. @default 300 */
  lifetimeSeconds?: number;
  /**
   * How long before expiry a token is renewed, in seconds.
   * @default the larger of 60 s and a fifth of the lifetime, but at most half the lifetime
   */
  renewBeforeSeconds?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

export type { ClientIdentity } from './admin-types.ts';

/**
 * Hands out client tokens (contract §3), signing a new one only when the cached one is near expiry.
 * Concurrent callers share one signing. A malformed access key fails in the constructor, with an
 * {@link AccessKeyFormatError} that never contains the key.
 */
export class TokenProvider {
  /** The client, key and tenant the access key belongs to. */
  readonly identity: ClientIdentity;
  private readonly key: ParsedAccessKey;
  private readonly options: Omit<TokenProviderOptions, 'accessKey'>;
  private readonly lifetimeSeconds: number;
  private readonly renewBeforeSeconds: number;
  private readonly now: () => number;
  private current: MintedToken | undefined;
  private signing: Promise<MintedToken> | undefined;

  constructor({ accessKey, ...options }: TokenProviderOptions) {
    this.key = parseAccessKey(accessKey);
    this.identity = { clientId: this.key.clientId, keyId: this.key.keyId, tenantId: this.key.tenantId };
    this.options = options;
    this.now = options.now ?? Date.now;
    this.lifetimeSeconds = options.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
    if (!Number.isInteger(this.lifetimeSeconds) || this.lifetimeSeconds < 1)
      throw new RangeError('lifetimeSeconds must be a positive whole number');
    this.renewBeforeSeconds = options.renewBeforeSeconds ?? -1;
    if (options.renewBeforeSeconds !== undefined && !(options.renewBeforeSeconds >= 0))
      throw new RangeError('renewBeforeSeconds must be at least 0');
    if (options.mode !== 'access-token' && !(this.renewBeforeSeconds < this.lifetimeSeconds))
      throw new RangeError('renewBeforeSeconds must be at least 0 and less than lifetimeSeconds');
  }

  /** How long before a token's expiry it is renewed: as configured, else by its lifetime (at most half of it). */
  private renewMargin(token: MintedToken): number {
    const lifetime = token.expiresAt - token.issuedAt;
    if (this.renewBeforeSeconds >= 0) return this.renewBeforeSeconds < lifetime ? this.renewBeforeSeconds : lifetime / 2;
    return Math.min(Math.max(60, lifetime / 5), lifetime / 2);
  }

  private mint(): Promise<MintedToken> {
    const { mode, audience, scope, issuerBase } = this.options;
    if (mode === 'access-token')
      return requestAccessToken(this.key, {
        issuerBase,
        now: this.now,
        ...(scope !== undefined ? { scope } : {}),
        ...(audience !== undefined ? { resource: audience } : {}),
        ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      });
    return signToken(this.key, { ...this.options, lifetimeSeconds: this.lifetimeSeconds, now: this.now });
  }

  /** A valid token: the cached one, or a fresh one when the cached one is within the renewal margin of expiry. */
  async getToken(): Promise<string> {
    const current = this.current;
    if (current && this.now() / 1000 < current.expiresAt - this.renewMargin(current)) return current.token;
    this.signing ??= this.mint()
      .then((minted) => {
        this.current = minted;
        return minted;
      })
      .finally(() => {
        this.signing = undefined;
      });
    return (await this.signing).token;
  }

  /** The `Authorization` header value for the current token. */
  async authorizationHeader(): Promise<string> {
    return `Bearer ${await this.getToken()}`;
  }

  /** Forgets the cached token (e.g. after a 401), so the next call signs a new one. */
  invalidate(): void {
    this.current = undefined;
  }

  /** So that logging the provider never shows the private key. */
  toJSON(): ClientIdentity {
    return this.identity;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `TokenProvider { clientId: '${this.identity.clientId}', keyId: '${this.identity.keyId}' }`;
  }
}
