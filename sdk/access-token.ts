/**
 * Access tokens from a deployment's token endpoint (contract §9): an assertion signed with the access key (aud the
 * issuer base, a fresh jti, 60 s), exchanged with `client_credentials` and `private_key_jwt` (RFC 7523) for a
 * Keysmith access token. Needs no AWS SDK: jose and fetch.
 */
import { randomUUID } from 'node:crypto';
import { type ParsedAccessKey, parseAccessKey } from '#shared/access-key.ts';
import { type MintedToken, signToken } from './token.ts';

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** How long an assertion lives: long enough for one request, far under the endpoint's 300 s. */
const ASSERTION_SECONDS = 60;

/** Options of {@link requestAccessToken}. */
export interface AccessTokenRequestOptions {
  /** The deployment's issuer base, e.g. `https://keys.example.com`; the token endpoint is `{issuerBase}/v1/oauth/token`. */
  issuerBase: string;
  /** Space-separated scopes (a subset of the client's). @default all the client's scopes but keysmith: ones */
  scope?: string;
  /** The access token's audience (RFC 8707 `resource`). @default the deployment's first audience */
  resource?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

/** An access token and its scopes; `issuedAt`/`expiresAt` in epoch seconds, by the local clock. */
export interface IssuedAccessToken extends MintedToken {
  scope: string;
}

/** The token endpoint refused the request: its RFC 6749 `error` and `error_description` (never a token). */
export class TokenEndpointError extends Error {
  override name = 'TokenEndpointError';
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(`token endpoint answered ${status} ${error}: ${description}`);
  }
}

/**
 * Asks the token endpoint for an access token, with a fresh assertion signed by the access key (its text, a secret
 * never echoed, or already parsed).
 */
export async function requestAccessToken(
  accessKey: string | ParsedAccessKey,
  options: AccessTokenRequestOptions,
): Promise<IssuedAccessToken> {
  const key = typeof accessKey === 'string' ? parseAccessKey(accessKey) : accessKey;
  const issuerBase = options.issuerBase.replace(/\/+$/, '');
  const now = options.now ?? Date.now;
  const assertion = await signToken(key, {
    issuerBase,
    audience: issuerBase,
    lifetimeSeconds: ASSERTION_SECONDS,
    jti: randomUUID(),
    now,
  });
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: CLIENT_ASSERTION_TYPE,
    client_assertion: assertion.token,
  });
  if (options.scope !== undefined) body.set('scope', options.scope);
  if (options.resource !== undefined) body.set('resource', options.resource);
  const sentAt = Math.floor(now() / 1000);
  const response = await (options.fetch ?? fetch)(`${issuerBase}/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: body.toString(),
    // A redirect would hand the assertion to another host, which could redeem it: never followed.
    redirect: 'manual',
  });
  if (response.status >= 300 && response.status < 400)
    throw new TokenEndpointError(
      response.status,
      'invalid_response',
      'the token endpoint answered with a redirect; not followed',
    );
  const text = await response.text();
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    answer = {};
  }
  if (!response.ok || typeof answer.access_token !== 'string') {
    const error = typeof answer.error === 'string' ? answer.error : 'invalid_response';
    const description =
      typeof answer.error_description === 'string' ? answer.error_description.slice(0, 300) : `HTTP ${response.status}`;
    throw new TokenEndpointError(response.status, error, description);
  }
  const expiresIn = Number(answer.expires_in);
  if (!Number.isInteger(expiresIn) || expiresIn < 1)
    throw new TokenEndpointError(response.status, 'invalid_response', 'the answer has no expires_in');
  return {
    token: answer.access_token,
    issuedAt: sentAt,
    // From when the request was sent: the token can only expire later than this by the server's clock.
    expiresAt: sentAt + expiresIn,
    scope: typeof answer.scope === 'string' ? answer.scope : '',
  };
}
