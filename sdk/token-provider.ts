/**
 * A cached source of client tokens for a service client: signs with its access key, reuses the token,
 * and renews it well before it expires. Needs no AWS SDK.
 */
import { type ParsedAccessKey, parseAccessKey } from '#shared/access-key.ts';
import { DEFAULT_LIFETIME_SECONDS, type MintedToken, signToken } from './token.ts';

/** Options of {@link TokenProvider}. */
export interface TokenProviderOptions {
  /** The access key `{clientId}.{keyId}.{tenantId}.{privateKey}` (a secret; never logged or echoed). */
  accessKey: string;
  /** The deployment's public base URL, e.g. `https://keys.example.com`. */
  issuerBase: string;
  /** The audience the protected API expects. @default issuerBase */
  audience?: string;
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

/** What the provider knows about a service client, from its access key (no secret in it). */
export interface ClientIdentity {
  clientId: string;
  keyId: string;
  tenantId: string;
}

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
    this.renewBeforeSeconds =
      options.renewBeforeSeconds ?? Math.min(Math.max(60, this.lifetimeSeconds / 5), this.lifetimeSeconds / 2);
    if (!(this.renewBeforeSeconds >= 0 && this.renewBeforeSeconds < this.lifetimeSeconds))
      throw new RangeError('renewBeforeSeconds must be at least 0 and less than lifetimeSeconds');
  }

  /** A valid token: the cached one, or a fresh one when the cached one is within the renewal margin of expiry. */
  async getToken(): Promise<string> {
    const current = this.current;
    if (current && this.now() / 1000 < current.expiresAt - this.renewBeforeSeconds) return current.token;
    this.signing ??= signToken(this.key, { ...this.options, lifetimeSeconds: this.lifetimeSeconds, now: this.now })
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
