/**
 * Verifies Keysmith access tokens (contract §9) in a service that is not behind API Gateway: RS256, `typ`
 * at+jwt, `iss` the issuer base, `aud` one of yours, the deployment's JWKS (`{issuerBase}/.well-known/jwks.json`,
 * fetched and cached by jose), and Keysmith's claims. Exposes who called, for which tenant, with which scopes.
 * Nothing is checked against DynamoDB: an access token is good until it expires (its lifetime is its revocation
 * bound). Needs no AWS SDK.
 */
import { createRemoteJWKSet, customFetch, errors, jwtVerify } from 'jose';
import { SCOPE_TOKEN } from '#shared/ids.ts';
import { RESERVED_SCOPE_PREFIX } from '#shared/model.ts';

/** Options of {@link AccessTokenVerifier}. */
export interface AccessTokenVerifierOptions {
  /** The deployment's issuer base, e.g. `https://keys.example.com`. */
  issuerBase: string;
  /** The audiences this service accepts (an access token's `aud`, the `resource` its client asked for). */
  audiences: string[];
  /** Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds. @default 60 */
  clockSkewSeconds?: number;
  /** The fetch of the JWKS. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** What a verified access token says. */
export interface VerifiedAccessTokenClaims {
  clientId: string;
  tenantId: string;
  keyId: string;
  scopes: string[];
  audience: string;
  /** `exp`, seconds since the epoch. */
  expiresAt: number;
}

/** The token was refused; `reason` says why (for logs), and never contains the token. */
export class AccessTokenRejectedError extends Error {
  override name = 'AccessTokenRejectedError';
  constructor(readonly reason: string) {
    super(`access token refused: ${reason}`);
  }
}

export class AccessTokenVerifier {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;
  private readonly issuerBase: string;

  constructor(private readonly options: AccessTokenVerifierOptions) {
    this.issuerBase = options.issuerBase.replace(/\/+$/, '');
    if (options.audiences.length === 0) throw new RangeError('audiences must name at least one audience');
    this.jwks = createRemoteJWKSet(new URL(`${this.issuerBase}/.well-known/jwks.json`), {
      ...(options.fetch ? { [customFetch]: options.fetch } : {}),
    });
  }

  /** Verifies `token`; throws {@link AccessTokenRejectedError} for a bad token, and rethrows JWKS fetch failures. */
  async verify(token: string): Promise<VerifiedAccessTokenClaims> {
    if (token.length > 8192) throw new AccessTokenRejectedError('token_too_large');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        issuer: this.issuerBase,
        audience: this.options.audiences,
        typ: 'at+jwt',
        algorithms: ['RS256'],
        clockTolerance: this.options.clockSkewSeconds ?? 60,
        requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'tenant_id', 'key_id', 'scope'],
      }));
    } catch (error) {
      if (error instanceof errors.JOSEError && !(error instanceof errors.JWKSTimeout))
        throw new AccessTokenRejectedError(error.code);
      throw error;
    }
    const { sub, client_id: clientId, tenant_id: tenantId, key_id: keyId, scope, aud, exp } = payload;
    if (typeof sub !== 'string' || clientId !== sub || typeof tenantId !== 'string' || typeof keyId !== 'string')
      throw new AccessTokenRejectedError('invalid_claim');
    if (typeof scope !== 'string') throw new AccessTokenRejectedError('invalid_claim');
    const scopes = scope === '' ? [] : scope.split(' ');
    if (!scopes.every((s) => SCOPE_TOKEN.test(s))) throw new AccessTokenRejectedError('invalid_claim');
    // Keysmith never issues its own scopes in access tokens: one that carries them is not Keysmith's to trust.
    if (scopes.some((s) => s.startsWith(RESERVED_SCOPE_PREFIX))) throw new AccessTokenRejectedError('scope_not_allowed');
    const audiences = [aud].flat();
    const audience = this.options.audiences.find((a) => audiences.includes(a)) as string;
    return { clientId: sub, tenantId, keyId, scopes: [...new Set(scopes)], audience, expiresAt: exp as number };
  }
}
