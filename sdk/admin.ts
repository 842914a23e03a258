/**
 * `KeysmithAdmin`: a typed client of the management API (contract §5), for a SaaS backend that creates service
 * clients and access keys for its customers. It signs its own client tokens with an admin's access key. Needs no
 * AWS SDK: jose (through the token provider) only. Its calls are {@link AdminClient}'s (./admin-client.ts).
 */
import { AdminClient, type KeysmithAdminConnection, type TokenSource } from './admin-client.ts';
import { TokenProvider } from './token-provider.ts';

export { DEFAULT_TIMEOUT_MS, isLoopbackHost, type KeysmithAdminConnection, MAX_RESPONSE_BYTES } from './admin-client.ts';

/** Sign tokens with an access key. */
export interface KeysmithAdminAccessKey {
  /**
   * An access key of a client holding `keysmith:admin` (its own tenant) or `keysmith:platform-admin` (every tenant).
   * A secret: it appears in no error, `toJSON` or `util.inspect` output.
   */
  accessKey: string;
  /** The deployment's issuer base (its `KEYSMITH_ISSUER_BASE`). @default baseUrl */
  issuerBase?: string;
  /** The audience of the tokens; one the deployment accepts. @default issuerBase */
  audience?: string;
  tokenProvider?: never;
}

/** Take tokens from a {@link TokenProvider} of your own (it knows its issuer base and audience). */
export interface KeysmithAdminTokenProvider {
  tokenProvider: TokenProvider;
  accessKey?: never;
  issuerBase?: never;
  audience?: never;
}

/** Options of {@link KeysmithAdmin}: the connection, and an access key or a token provider. */
export type KeysmithAdminOptions = KeysmithAdminConnection & (KeysmithAdminAccessKey | KeysmithAdminTokenProvider);

function tokensOf(options: KeysmithAdminOptions): TokenSource {
  if (options.tokenProvider !== undefined && options.accessKey !== undefined)
    throw new TypeError('give accessKey or tokenProvider, not both');
  if (options.tokenProvider !== undefined) {
    if (!(options.tokenProvider instanceof TokenProvider)) throw new TypeError('tokenProvider must be a TokenProvider');
    return options.tokenProvider;
  }
  if (typeof options.accessKey !== 'string') throw new TypeError('accessKey or tokenProvider is required');
  const issuerBase = options.issuerBase ?? options.baseUrl.replace(/\/+$/, '');
  return new TokenProvider({ accessKey: options.accessKey, issuerBase, audience: options.audience ?? issuerBase });
}

/**
 * A client of a Keysmith deployment's HTTP API: service clients, their access keys, the audit trail and discovery.
 * Each call signs (or reuses) a short-lived client token; after a 401 the cached token is dropped, so the next call
 * signs a new one (a call is never repeated on its own). An error answer throws a {@link KeysmithApiError}; no answer
 * (refused, reset, timed out) a {@link KeysmithConnectionError}.
 *
 * Tenant methods take the `tenantId` first, always: a platform admin manages many tenants, and a default would make
 * a forgotten argument act on the admin's own tenant. Pass `admin.identity.tenantId` for the key's own tenant.
 * The `list*` methods return one {@link Page}; the `iterate*` methods follow `nextCursor` and yield every item.
 *
 * @example
 * ```ts
 * const admin = new KeysmithAdmin({ baseUrl: 'https://keys.example.com', accessKey: process.env.KEYSMITH_ADMIN_ACCESS_KEY! });
 * const client = await admin.createClient('acme', { name: 'billing-worker', scopes: ['invoices:read'] });
 * const { accessKey } = await admin.createKey('acme', client.clientId); // shown once: store it as a secret now
 * for await (const key of admin.iterateKeys('acme', client.clientId)) console.log(key.keyId, key.status);
 * try {
 *   await admin.getClient('acme', 'sc_0000000000000000000000');
 * } catch (error) {
 *   if (!(error instanceof KeysmithApiError && error.code === 'client_not_found')) throw error;
 * }
 * ```
 */
export class KeysmithAdmin extends AdminClient {
  /** Throws a `TypeError` or `RangeError` for unusable options, an `AccessKeyFormatError` for a malformed access key. */
  constructor(options: KeysmithAdminOptions) {
    // The connection is checked first, as before: a bad baseUrl is reported before the access key is parsed.
    super(options, () => tokensOf(options));
  }
}
