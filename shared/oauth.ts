/**
 * The token endpoint's core (contract §9, RFC 6749, RFC 7523): a form-encoded token request in, an access token or an
 * RFC 6749 §5.2 error out. Free of HTTP framing, so the local server and the Lambda share it.
 *
 * An assertion is a client token (§3) with the rules of §9 on top: `iss` may be the bare clientId, `aud` is exactly
 * the issuer base (RFC 7523bis: never the token endpoint, never an array with another audience; CVE-2025-27370),
 * `exp - iat` ≤ 300 s, and `jti` single-use: it is recorded with a conditional put that expires with the assertion,
 * only after the signature has verified (an unsigned request cannot burn a client's jti values). The client and key
 * are read strongly consistently, through their seals, at that moment.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { algorithmOfKey, publicKeyObject, publicKeyWeakness } from './access-key.ts';
import { AccessTokenTooLargeError, accessTokenSigningInput, type TokenSigner } from './access-token.ts';
import { SCOPE_TOKEN } from './ids.ts';
import { isKeyActive, RESERVED_SCOPE_PREFIX } from './model.ts';
import { JTI_PARTITION_PREFIX } from './names.ts';
import type { OAuthErrorCode } from './schemas.ts';
import type { ClientStore } from './store.ts';
import {
  checkTimeAndAudience,
  type DenyReason,
  decodeClientToken,
  grantedScopes,
  TokenRejectedError,
  verifySignature,
} from './token-policy.ts';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const GRANT_TYPES = ['client_credentials', JWT_BEARER_GRANT] as const;

/** The longest `exp - iat` of an assertion (contract §9). */
export const MAX_ASSERTION_SECONDS = 300;

/** The longest `scope` parameter read: longer than any set of scopes that fits in a token. */
const MAX_SCOPE_PARAMETER = 4096;
/** A UTF-16 surrogate without its pair: not a character, and not a jti. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** What RFC 6749 §5.2 allows in `error_description`: printable ASCII but `"` and `\`. */
export const ERROR_DESCRIPTION = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** An RFC 6749 §5.2 error: the status, the `error` code and a description that helps (never token bytes). */
export class OAuthError extends Error {
  override name = 'OAuthError';
  constructor(
    readonly status: 400 | 401 | 500 | 503,
    readonly error: OAuthErrorCode,
    readonly description: string,
  ) {
    super(description);
    if (!ERROR_DESCRIPTION.test(description)) throw new TypeError('an error_description must be printable ASCII');
  }

  /** The JSON body of the error answer. */
  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/** The answer to a granted request. */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** What a rejected assertion tells its caller: enough to fix a client, nothing about other tenants. */
const ASSERTION_PROBLEMS: Partial<Record<DenyReason, string>> = {
  missing_token: 'the assertion is empty',
  token_too_large: 'the assertion is over 8 KiB',
  malformed_token: 'the assertion is not a compact JWS of three base64url parts with JSON objects',
  unsupported_alg: "the assertion's alg must be EdDSA (or Ed25519), ES256 or RS256",
  unsupported_typ: "the assertion's typ must be absent, JWT or at+jwt",
  crit_not_supported: "the assertion's header must not have crit",
  missing_kid: "the assertion's header must name the keyId as kid",
  invalid_issuer: "the assertion's iss must be the clientId or {issuerBase}/v1/clients/{clientId}",
  subject_mismatch: "the assertion's sub must be its clientId",
  missing_claim: 'the assertion must have exp, iat and jti',
  invalid_claim: "the assertion's exp, iat, nbf, jti or scope is malformed",
  unknown_client: 'no such client, or its key is not active',
  client_disabled: 'no such client, or its key is not active',
  unknown_key: 'no such client, or its key is not active',
  key_revoked: 'no such client, or its key is not active',
  key_expired: 'no such client, or its key is not active',
  algorithm_mismatch: "the assertion's alg is not the key's algorithm",
  invalid_signature: 'the assertion signature does not verify with the key named by kid',
  invalid_audience: "the assertion's aud must be the issuer base exactly, alone",
  token_expired: 'the assertion has expired',
  token_not_yet_valid: 'the assertion is not valid yet (nbf)',
  issued_in_future: "the assertion's iat is in the future",
  lifetime_too_long: `the assertion may live at most ${MAX_ASSERTION_SECONDS} s (exp - iat)`,
  scope_not_allowed: "the assertion's scope claim names a scope the client does not have",
};

/** Where a `jti` is remembered until its assertion expires. */
export interface JtiStore {
  /** Records `jti` of `clientId` until `expiresAtEpoch`; false when it is already recorded and not yet expired. */
  remember(clientId: string, jti: string, expiresAtEpoch: number, nowEpoch: number): Promise<boolean>;
}

/**
 * `jti` values in the main table, one item each (`pk JTI#{clientId}#{sha256(jti)}`, `sk JTI`), removed by its TTL
 * after the assertion expires; until DynamoDB's TTL gets to it, an expired item is overwritten, not a replay.
 * Outside the client's partition, so the sealed reads of a client never see them.
 */
export class DynamoJtiStore implements JtiStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async remember(clientId: string, jti: string, expiresAtEpoch: number, nowEpoch: number): Promise<boolean> {
    const digest = createHash('sha256').update(jti).digest('base64url');
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: `${JTI_PARTITION_PREFIX}${clientId}#${digest}`, sk: 'JTI', expiresAtEpoch },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAtEpoch < :now',
          ExpressionAttributeValues: { ':now': nowEpoch },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException || (error as Error)?.name === 'ConditionalCheckFailedException')
        return false;
      throw error;
    }
  }
}

/** Options of {@link TokenIssuer}. */
export interface TokenIssuerOptions {
  store: Pick<ClientStore, 'getClientWithKeys'>;
  jti: JtiStore;
  signer: TokenSigner;
  /** The issuer base: `iss` of access tokens and the one `aud` of assertions. */
  issuerBase: string;
  /** Audiences an access token may be for (`resource`); the first is the default. */
  audiences: readonly string[];
  accessTokenSeconds: number;
  clockSkewSeconds: number;
  /** @default Date.now */
  now?: () => number;
  /** Told of each accepted assertion's key, to record when keys were last used (contract §11); must not wait. */
  onKeyUsed?: (clientId: string, keyId: string) => void;
}

/** The parameters of a token request: each at most once. */
export type TokenParameters = ReadonlyMap<string, string>;

const PARAMETERS_ONCE = [
  'grant_type',
  'client_assertion_type',
  'client_assertion',
  'client_id',
  'assertion',
  'scope',
  'resource',
  'client_secret',
];

/**
 * Parses an `application/x-www-form-urlencoded` body (RFC 6749 §3.2, §4.4). Repeated parameters are an
 * `invalid_request` (RFC 6749 §3.1); unknown ones are ignored, as RFC 6749 §3.2 requires.
 */
export function parseTokenRequest(contentType: string | undefined, body: string | undefined): TokenParameters {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/x-www-form-urlencoded')
    throw new OAuthError(
      400,
      'invalid_request',
      'send the token request as application/x-www-form-urlencoded (RFC 6749 section 4.4)',
    );
  const parameters = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(body ?? '')) {
    if (!PARAMETERS_ONCE.includes(name)) continue;
    if (parameters.has(name)) throw new OAuthError(400, 'invalid_request', `the parameter ${name} is given more than once`);
    parameters.set(name, value);
  }
  return parameters;
}

/** Issues Keysmith access tokens for valid assertions. */
export class TokenIssuer {
  private readonly now: () => number;

  constructor(private readonly options: TokenIssuerOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Grants or refuses a token request. Throws an {@link OAuthError} for every refusal; any other error is
   * Keysmith's own (a dependency failed), for the caller to answer as a 5xx.
   * `authorization` is the request's Authorization header: Keysmith has no client secrets, so Basic is refused.
   */
  async token(parameters: TokenParameters, authorization?: string): Promise<TokenResponse> {
    const grantType = parameters.get('grant_type');
    if (grantType === undefined) throw new OAuthError(400, 'invalid_request', 'grant_type is required');
    if (!(GRANT_TYPES as readonly string[]).includes(grantType))
      throw new OAuthError(400, 'unsupported_grant_type', `grant_type must be client_credentials or ${JWT_BEARER_GRANT}`);
    const clientCredentials = grantType === 'client_credentials';
    // RFC 6749 §5.2: a client that fails to authenticate is invalid_client; a bad jwt-bearer grant is invalid_grant.
    const refuse = (description: string) =>
      clientCredentials ? new OAuthError(401, 'invalid_client', description) : new OAuthError(400, 'invalid_grant', description);

    if (parameters.has('client_secret') || /^basic /i.test(authorization ?? ''))
      throw new OAuthError(401, 'invalid_client', 'Keysmith clients have no secret: authenticate with private_key_jwt');
    let assertion: string | undefined;
    if (clientCredentials) {
      if (parameters.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE)
        throw new OAuthError(400, 'invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
      assertion = parameters.get('client_assertion');
      if (!assertion) throw new OAuthError(400, 'invalid_request', 'client_assertion is required');
    } else {
      if (parameters.has('client_assertion') || parameters.has('client_assertion_type'))
        throw new OAuthError(
          400,
          'invalid_request',
          'the jwt-bearer grant takes its assertion in assertion alone; client_assertion is for client_credentials',
        );
      assertion = parameters.get('assertion');
      if (!assertion) throw new OAuthError(400, 'invalid_request', 'assertion is required');
    }
    const audience = parameters.get('resource') ?? this.options.audiences[0];
    if (audience === undefined || !this.options.audiences.includes(audience))
      throw new OAuthError(400, 'invalid_target', 'resource must be one of the audiences this deployment issues tokens for');

    const { issuerBase, clockSkewSeconds } = this.options;
    const policy = { issuerBase, audiences: [issuerBase], maxTokenLifetimeSeconds: MAX_ASSERTION_SECONDS, clockSkewSeconds };
    let nowSeconds = Math.floor(this.now() / 1000);
    const fail = (error: unknown): never => {
      if (error instanceof TokenRejectedError) throw refuse(ASSERTION_PROBLEMS[error.reason] ?? 'the assertion is not valid');
      throw error;
    };
    let decoded: ReturnType<typeof decodeClientToken>;
    try {
      decoded = decodeClientToken(assertion, issuerBase, { bareIssuer: true });
      const { aud, jti } = decoded.payload;
      // The issuer base exactly: a string, or an array holding only it.
      if (!(aud === issuerBase || (Array.isArray(aud) && aud.length === 1 && aud[0] === issuerBase)))
        throw new TokenRejectedError('invalid_audience');
      if (jti === undefined) throw new TokenRejectedError('missing_claim');
      // Well-formed UTF-16 only: a lone surrogate would hash like U+FFFD, so two jti values would count as one.
      if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256 || LONE_SURROGATE.test(jti))
        throw new TokenRejectedError('invalid_claim');
      checkTimeAndAudience(decoded.payload, policy, nowSeconds);
    } catch (error) {
      return fail(error);
    }
    const clientIdParameter = parameters.get('client_id');
    if (clientIdParameter !== undefined && clientIdParameter !== decoded.clientId)
      throw refuse("client_id is not the assertion's client");

    // Strongly consistent, through the seals: a key revoked or a client disabled a moment ago gets no token.
    const found = await this.options.store.getClientWithKeys(decoded.clientId);
    nowSeconds = Math.floor(this.now() / 1000);
    const stored = found?.keys.find((k) => k.keyId === decoded.keyId);
    if (!found?.client.enabled || !stored || !isKeyActive(stored, nowSeconds * 1000))
      return fail(new TokenRejectedError('unknown_key'));
    const key = publicKeyObject(stored.publicKey);
    if (algorithmOfKey(key) !== stored.algorithm || publicKeyWeakness(key)) return fail(new TokenRejectedError('unknown_key'));
    if (decoded.algorithm !== stored.algorithm) return fail(new TokenRejectedError('algorithm_mismatch'));
    if (!verifySignature(stored.algorithm, key, decoded.signingInput, decoded.signature))
      return fail(new TokenRejectedError('invalid_signature'));

    let scopes: string[];
    try {
      // Time may have passed during the read.
      checkTimeAndAudience(decoded.payload, policy, nowSeconds);
      scopes = grantedScopes(decoded.payload, found.client.scopes);
    } catch (error) {
      return fail(error);
    }
    const requested = parameters.get('scope');
    if (requested !== undefined) {
      if (requested.length > MAX_SCOPE_PARAMETER)
        throw new OAuthError(400, 'invalid_scope', `scope is over ${MAX_SCOPE_PARAMETER} characters`);
      const asked = requested.split(' ').filter((s) => s.length > 0);
      if (asked.length === 0)
        throw new OAuthError(400, 'invalid_scope', "scope is empty; leave it out for all the client's scopes");
      if (!asked.every((s) => SCOPE_TOKEN.test(s)))
        throw new OAuthError(400, 'invalid_scope', 'scope must be scope-tokens separated by spaces (RFC 6749 section 3.3)');
      const missing = asked.filter((s) => !scopes.includes(s));
      if (missing.length > 0)
        throw new OAuthError(400, 'invalid_scope', `the client may not have: ${missing.slice(0, 5).join(' ').slice(0, 300)}`);
      scopes = [...new Set(asked)];
    }
    // Keysmith's own scopes manage Keysmith: they stay with client tokens, which the authorizer checks against the
    // directory, and never go into an access token, which nothing can revoke before it expires.
    const privileged = scopes.filter((s) => s.startsWith(RESERVED_SCOPE_PREFIX));
    if (privileged.length > 0) {
      if (requested !== undefined || decoded.payload.scope !== undefined)
        throw new OAuthError(
          400,
          'invalid_scope',
          `${privileged.join(' ')} cannot be in an access token: manage Keysmith with a client token`,
        );
      scopes = scopes.filter((s) => !s.startsWith(RESERVED_SCOPE_PREFIX));
    }

    const iat = Math.floor(this.now() / 1000);
    // Never past the key's own end (its expiry, or a rolled key's grace end): nothing revokes an access token.
    const keyEnd = stored.expiresAt ? Math.floor(Date.parse(stored.expiresAt) / 1000) : Number.POSITIVE_INFINITY;
    const exp = Math.min(iat + this.options.accessTokenSeconds, keyEnd);
    if (exp <= iat) return fail(new TokenRejectedError('unknown_key'));
    const { kid } = await this.options.signer.key();
    let signingInput: string;
    try {
      // Before the jti is spent: a token too large for any verifier is refused, and the assertion can be used again.
      signingInput = accessTokenSigningInput(kid, {
        iss: issuerBase,
        sub: decoded.clientId,
        client_id: decoded.clientId,
        aud: audience,
        scope: scopes.join(' '),
        tenant_id: found.client.tenantId,
        key_id: decoded.keyId,
        iat,
        exp,
        jti: randomUUID(),
      });
    } catch (error) {
      if (error instanceof AccessTokenTooLargeError)
        throw new OAuthError(400, 'invalid_scope', 'these scopes do not fit in an 8 KiB access token: ask for fewer');
      throw error;
    }

    // Single use, recorded only for an assertion that verified: it expires with the assertion (plus the skew).
    const expiresAt = (decoded.payload.exp as number) + clockSkewSeconds;
    if (!(await this.options.jti.remember(decoded.clientId, decoded.payload.jti as string, expiresAt, nowSeconds)))
      throw refuse('the assertion has been used before: sign a new one with a fresh jti');

    const signature = await this.options.signer.sign(Buffer.from(signingInput));
    const access_token = `${signingInput}.${signature.toString('base64url')}`;
    try {
      this.options.onKeyUsed?.(decoded.clientId, decoded.keyId);
    } catch {
      // The use goes unrecorded; the token stands.
    }
    return { access_token, token_type: 'Bearer', expires_in: exp - iat, scope: scopes.join(' ') };
  }
}
