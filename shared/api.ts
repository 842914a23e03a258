/**
 * The HTTP API of contract §5, free of Lambda and API Gateway: a plain request (route, parameters, headers,
 * body, the authorizer's identity) in, a plain response out. Every failure becomes problem+json here.
 */
import { publicKeyObject, publicKeyWeakness } from './access-key.ts';
import type { IssuerKey } from './access-token.ts';
import { assertTenantAdmin } from './admins.ts';
import type { AuditLog, ListedAuditEvent } from './audit/log.ts';
import { identityContext } from './authorizer.ts';
import type { KeysmithConfig } from './config.ts';
import { CONSOLE_HEADERS, type ConsoleFiles, consoleResponse, isConsoleRoute } from './console.ts';
import {
  accessDenied,
  InvalidRequestError,
  KeysmithError,
  MethodNotAllowedError,
  PayloadTooLargeError,
  type Problem,
  ServiceUnavailableError,
  toProblem,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from './errors.ts';
import {
  type AccessKey,
  ALGORITHMS,
  type CallerIdentity,
  isKeyActive,
  keyStatus,
  PLATFORM_ADMIN_SCOPE,
  type ServiceClient,
} from './model.ts';
import { GRANT_TYPES, OAuthError, parseTokenRequest, type TokenIssuer } from './oauth.ts';
import { buildOpenApiDocument, OPERATIONS, type OpenApiDocument } from './openapi.ts';
import { type Route, type RouteId, TOKEN_ENDPOINT_PATH } from './routes.ts';
import {
  type AuditEventPage,
  auditQuery,
  type ClientPage,
  type ClientView,
  type CreatedKey,
  createClientBody,
  createKeyBody,
  emptyQuery,
  type Health,
  type IssuerJwks,
  type IssuerMetadata,
  type Jwks,
  type KeyPage,
  type KeyView,
  listQuery,
  type OAuthErrorBody,
  type OpenIdConfiguration,
  type ProblemBody,
  parseInput,
  pathParameters,
  rollKeyBody,
  updateClientBody,
  type WhoAmI,
} from './schemas.ts';
import type { KeysmithService } from './service.ts';
import type { ClientStore, Page } from './store.ts';
import { issuerOf } from './token-policy.ts';
import type { ClientUsage, UsageReader } from './usage.ts';

/** Bodies larger than this are refused with 413. */
export const MAX_BODY_BYTES = 16 * 1024;

/** A request as the API sees it, whoever carried it (API Gateway or the local server). */
export interface ApiRequest {
  route: Route;
  pathParameters: Record<string, string | undefined>;
  query: Record<string, string | undefined>;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  body: string | undefined;
  /** The identity the authorizer allowed, on routes with auth. */
  caller: CallerIdentity | undefined;
  requestId?: string;
  sourceIp?: string;
}

export interface ApiResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** What a function's API needs; the management function has the service, the discovery function the store. */
export interface ApiDependencies {
  config: Pick<KeysmithConfig, 'issuerBase' | 'revocationSeconds'>;
  service?: KeysmithService;
  audit?: AuditLog;
  store?: Pick<ClientStore, 'getClientWithKeys'>;
  /** The deployment's token-signing public keys, signer's first (the discovery function; contract §9). */
  issuerKeys?: () => Promise<readonly IssuerKey[]>;
  /** When keys were last used (the management function; contract §11). */
  usage?: Pick<UsageReader, 'forClient' | 'forClients'>;
  /** The token endpoint (the token function). */
  tokenIssuer?: TokenIssuer;
  /** The built console, and the audience of its tokens (the discovery function). */
  console?: { files: () => ConsoleFiles | undefined; audience: string };
  /** Called with failures that become a 5xx, for logging: the error thrown and what it was reported as. */
  onServerError?: (error: unknown, request: ApiRequest, reported: KeysmithError | undefined) => void;
}

interface Result {
  status: number;
  /** JSON to send. */
  body?: unknown;
  /** Or text to send as it is (the console), its content type among `headers`. */
  text?: string;
  headers?: Record<string, string>;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Result => ({ status, body, headers });

/** The problem+json response for an error, with headers such as Allow where they belong. */
export function problemResponse(error: unknown, extraHeaders: Readonly<Record<string, string>> = {}): ApiResponse {
  const problem: Problem = toProblem(error);
  const headers: Record<string, string> = {
    ...extraHeaders,
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
  if (error instanceof MethodNotAllowedError) headers.allow = error.allow.join(', ');
  return { statusCode: problem.status, headers, body: JSON.stringify(problem satisfies ProblemBody) };
}

/**
 * AWS SDK errors that mean "the dependency is busy or down", not "Keysmith is broken"; and access denied, which
 * is a deployment fault (logged with its IAM action), never reported as an outage.
 */
function unavailable(error: unknown): KeysmithError | undefined {
  const denied = accessDenied(error, 'unknown');
  if (denied) return denied;
  const e = error as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? '';
  if (
    e?.$retryable ||
    /Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded|ServiceUnavailable|InternalServerError|TimeoutError|ECONNREFUSED|ECONNRESET/.test(
      name,
    ) ||
    (e?.$metadata?.httpStatusCode ?? 0) >= 500
  )
    return new ServiceUnavailableError(
      'store_unavailable',
      'The data store is unavailable right now; nothing was changed. Retry later.',
    );
  return undefined;
}

const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A JSON.parse reviver: names that would reach an object's prototype are refused wherever they appear. */
function refuseReservedKeys(key: string, value: unknown): unknown {
  if (RESERVED_KEYS.has(key)) throw new InvalidRequestError(`"${key}" is a reserved name and cannot be used as a key.`);
  return value;
}

function parseBody(request: ApiRequest, required: boolean): unknown {
  const raw = request.body ?? '';
  if (Buffer.byteLength(raw, 'utf8') > MAX_BODY_BYTES) throw new PayloadTooLargeError(MAX_BODY_BYTES);
  if (raw.trim() === '') {
    if (required) throw new InvalidRequestError('This route needs a JSON body.', 'missing_body');
    return {};
  }
  const contentType = request.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(contentType)) throw new UnsupportedMediaTypeError();
  let body: unknown;
  try {
    body = JSON.parse(raw, refuseReservedKeys);
  } catch (error) {
    if (error instanceof InvalidRequestError) throw error;
    throw new InvalidRequestError('The body is not valid JSON.', 'malformed_json');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new InvalidRequestError('The body must be a JSON object.', 'invalid_request');
  return body;
}

function param(request: ApiRequest, name: keyof typeof pathParameters): string {
  return parseInput(pathParameters[name], request.pathParameters[name] ?? '', 'path').valueOf();
}

/**
 * `value` as `Shape`, refusing at compile time any member `Shape` lacks: a view that spreads a model keeps to its
 * schema when the model gains a member (a missing or mistyped member fails as any assignment does).
 */
const exactly =
  <Shape>() =>
  <T extends Shape>(value: T & Record<Exclude<keyof T, keyof Shape>, never>): Shape =>
    value;

/** A client as the API shows it: every member of the model but its bookkeeping, and when it was last used. */
export function clientView(client: ServiceClient, issuerBase: string, usage?: ClientUsage): ClientView {
  const { version: _version, auditEventId: _auditEventId, ...rest } = client;
  const lastUsedAt = usage?.lastUsedAt;
  return exactly<ClientView>()({
    ...rest,
    ...(lastUsedAt ? { lastUsedAt } : {}),
    issuer: issuerOf(issuerBase, client.clientId),
  });
}

/** A key as the API shows it: never a private key, only the public JWK with its kid. */
export function keyView(key: AccessKey, nowMs: number, usage?: ClientUsage): KeyView {
  const lastUsedAt = usage?.keys.get(key.keyId);
  return {
    keyId: key.keyId,
    clientId: key.clientId,
    algorithm: key.algorithm,
    publicKey: { ...key.publicKey, kid: key.keyId, alg: key.algorithm, use: 'sig' },
    origin: key.origin,
    status: keyStatus(key, nowMs),
    createdAt: key.createdAt,
    ...(key.expiresAt ? { expiresAt: key.expiresAt } : {}),
    ...(key.revokedAt ? { revokedAt: key.revokedAt } : {}),
    ...(key.rolledAt ? { rolledAt: key.rolledAt, replacedBy: key.replacedBy } : {}),
    ...(lastUsedAt ? { lastUsedAt } : {}),
  };
}

function need<T>(dependency: T | undefined, name: string): T {
  if (!dependency) throw new Error(`this function is not configured with ${name}`);
  return dependency;
}

// The routes whose documented operation takes query parameters: the document and the API agree on which do.
const ROUTES_WITH_QUERY: ReadonlySet<RouteId> = new Set(
  (Object.keys(OPERATIONS) as RouteId[]).filter((id) => OPERATIONS[id].query !== undefined),
);

/** The document, built once per process and server URL (it is the same for every request). */
const openApiDocuments = new Map<string, OpenApiDocument>();
function openApiDocument(serverUrl: string): OpenApiDocument {
  const built = openApiDocuments.get(serverUrl);
  if (built) return built;
  const document = buildOpenApiDocument({ serverUrl });
  openApiDocuments.set(serverUrl, document);
  return document;
}

async function dispatch(request: ApiRequest, deps: ApiDependencies): Promise<Result> {
  const { route } = request;
  const caller = request.caller;
  if (route.auth !== 'none' && !caller) throw new UnauthorizedError();
  const tenantId = request.pathParameters.tenantId !== undefined ? param(request, 'tenantId') : '';
  if (route.auth === 'admin') assertTenantAdmin(caller as CallerIdentity, tenantId);
  const actor = { type: 'client' as const, ...(caller as CallerIdentity) };
  const meta = { requestId: request.requestId, sourceIp: request.sourceIp };
  const issuerBase = deps.config.issuerBase;
  const now = Date.now();
  // Routes without query parameters of their own refuse any, like every other unknown input; the console's pages
  // ignore them (a link with tracking parameters still opens the console).
  if (!ROUTES_WITH_QUERY.has(route.id) && !isConsoleRoute(route.id)) parseInput(emptyQuery, request.query, 'query');

  switch (route.id) {
    case 'health':
      return json(200, { status: 'ok' } satisfies Health);
    case 'whoami':
      return json(200, identityContext(caller as CallerIdentity) satisfies WhoAmI);
    case 'createClient': {
      const body = parseInput(createClientBody, parseBody(request, true), 'body');
      const client = await need(deps.service, 'service').createClient(actor, tenantId, body, meta);
      return json(201, clientView(client, issuerBase), { location: `/v1/tenants/${tenantId}/clients/${client.clientId}` });
    }
    case 'listClients': {
      const query = parseInput(listQuery, request.query, 'query');
      const page = await need(deps.service, 'service').listClients(tenantId, query.limit, query.cursor);
      const usage = await need(deps.usage, 'usage').forClients(page.items.map((c) => c.clientId));
      return json(200, {
        items: page.items.map((c) => clientView(c, issuerBase, usage.get(c.clientId))),
        ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
      } satisfies ClientPage);
    }
    case 'getClient': {
      const client = await need(deps.service, 'service').getClient(tenantId, param(request, 'clientId'));
      return json(200, clientView(client, issuerBase, await need(deps.usage, 'usage').forClient(client.clientId)));
    }
    case 'updateClient': {
      const clientId = param(request, 'clientId');
      const body = parseInput(updateClientBody, parseBody(request, true), 'body');
      // Read before the change: a usage table that fails answers 503 with nothing changed, never after a commit.
      const usage = await need(deps.usage, 'usage').forClient(clientId);
      const client = await need(deps.service, 'service').updateClient(actor, tenantId, clientId, body, meta);
      return json(200, clientView(client, issuerBase, usage));
    }
    case 'deleteClient':
      await need(deps.service, 'service').deleteClient(actor, tenantId, param(request, 'clientId'), meta);
      return { status: 204 };
    case 'createKey': {
      const clientId = param(request, 'clientId');
      const body = parseInput(createKeyBody, parseBody(request, false), 'body');
      const created = await need(deps.service, 'service').createKey(actor, tenantId, clientId, body, meta);
      return json(201, {
        ...keyView(created.key, now),
        ...(created.accessKey ? { accessKey: created.accessKey } : {}),
      } satisfies CreatedKey);
    }
    case 'listKeys': {
      const clientId = param(request, 'clientId');
      const query = parseInput(listQuery, request.query, 'query');
      const page = await need(deps.service, 'service').listKeys(tenantId, clientId, query.limit, query.cursor);
      const usage = await need(deps.usage, 'usage').forClient(clientId);
      return json(200, {
        items: page.items.map((k) => keyView(k, now, usage)),
        ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
      } satisfies KeyPage);
    }
    case 'rollKey': {
      const clientId = param(request, 'clientId');
      const body = parseInput(rollKeyBody, parseBody(request, false), 'body');
      const rolled = await need(deps.service, 'service').rollKey(actor, tenantId, clientId, param(request, 'keyId'), body, meta);
      return json(201, {
        ...keyView(rolled.key, now),
        ...(rolled.accessKey ? { accessKey: rolled.accessKey } : {}),
      } satisfies CreatedKey);
    }
    case 'revokeKey':
      await need(deps.service, 'service').revokeKey(actor, tenantId, param(request, 'clientId'), param(request, 'keyId'), meta);
      return { status: 204 };
    case 'listAuditEvents': {
      const query = parseInput(auditQuery, request.query, 'query');
      if (query.from && query.to && Date.parse(query.from) > Date.parse(query.to))
        throw new InvalidRequestError('from must not be after to.');
      const page = await need(deps.audit, 'audit').list(tenantId, {
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
        ...(query.from ? { from: new Date(query.from).toISOString() } : {}),
        ...(query.to ? { to: new Date(query.to).toISOString() } : {}),
        ...(query.action ? { action: query.action } : {}),
      });
      return json(
        200,
        ((caller as CallerIdentity).scopes.includes(PLATFORM_ADMIN_SCOPE)
          ? page
          : tenantView(page, tenantId)) satisfies AuditEventPage,
      );
    }
    case 'openidConfiguration': {
      const clientId = param(request, 'clientId');
      await discover(deps, clientId);
      const issuer = issuerOf(issuerBase, clientId);
      return json(
        200,
        {
          issuer,
          jwks_uri: `${issuer}/.well-known/openid-configuration/jwks`,
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: [...ALGORITHMS],
          token_endpoint_auth_signing_alg_values_supported: [...ALGORITHMS],
          claims_supported: ['iss', 'sub', 'aud', 'iat', 'exp', 'nbf', 'scope'],
        } satisfies OpenIdConfiguration,
        { 'cache-control': `public, max-age=${deps.config.revocationSeconds}` },
      );
    }
    case 'jwks': {
      const { client, keys } = await discover(deps, param(request, 'clientId'));
      // Weak keys stored before registration refused them are never published: other verifiers may trust them.
      const active = client.enabled
        ? keys.filter((k) => isKeyActive(k, now) && !publicKeyWeakness(publicKeyObject(k.publicKey)))
        : [];
      return json(200, { keys: active.map((k) => keyView(k, now).publicKey) } satisfies Jwks, {
        'cache-control': `public, max-age=${deps.config.revocationSeconds}`,
      });
    }
    case 'openapi':
      // Its servers name this deployment's base URL, so a client generated from it calls the right place.
      return json(200, openApiDocument(issuerBase), { 'cache-control': 'public, max-age=300' });
    case 'issuerMetadata':
    case 'authorizationServerMetadata':
      tokenIssuerKeys(deps);
      return json(200, issuerMetadata(issuerBase), { 'cache-control': `public, max-age=${ISSUER_DOCUMENT_SECONDS}` });
    case 'issuerJwks': {
      const keys = await tokenIssuerKeys(deps)();
      return json(200, { keys: keys.map((key) => key.jwk) } satisfies IssuerJwks, {
        'cache-control': `public, max-age=${ISSUER_DOCUMENT_SECONDS}`,
      });
    }
    case 'console':
    case 'consoleAsset': {
      const served = deps.console;
      const asset = route.id === 'consoleAsset' ? param(request, 'asset') : undefined;
      const { status, headers, body } = consoleResponse(served?.files(), asset, {
        issuerBase,
        audience: served?.audience ?? issuerBase,
      });
      return { status, headers, text: body };
    }
    case 'token':
      // Served by handleApiRequest, whose errors there are RFC 6749's, not problem+json.
      throw new Error('the token route is not dispatched');
  }
}

/** The issuer's keys; a deployment configured without a token-signing key has no token issuer to describe. */
function tokenIssuerKeys(deps: ApiDependencies): () => Promise<readonly IssuerKey[]> {
  if (deps.issuerKeys) return deps.issuerKeys;
  throw new KeysmithError(
    404,
    'token_issuer_not_configured',
    'Not found',
    'This deployment issues no access tokens: it has no token-signing key (KEYSMITH_TOKEN_SIGNING_KEY_ARN).',
  );
}

/**
 * How long the issuer's metadata and JWKS may be cached: a rotation publishes the next key at least this long before
 * it signs (docs/token-issuer.md), so a verifier's cached JWKS always holds the key of any token it is shown.
 */
export const ISSUER_DOCUMENT_SECONDS = 300;

/** The issuer's metadata (contract §9): what an OAuth 2.0 client library discovers before its token request. */
export function issuerMetadata(issuerBase: string): IssuerMetadata {
  return {
    issuer: issuerBase,
    token_endpoint: `${issuerBase}${TOKEN_ENDPOINT_PATH}`,
    jwks_uri: `${issuerBase}/.well-known/jwks.json`,
    grant_types_supported: [...GRANT_TYPES],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    // The assertion's alg follows from the client's key; Ed25519 is RFC 9864's name for EdDSA with Ed25519.
    token_endpoint_auth_signing_alg_values_supported: [...ALGORITHMS, 'Ed25519'],
    // No authorization endpoint: Keysmith issues tokens to clients for themselves only (client_credentials).
    response_types_supported: [],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    claims_supported: ['iss', 'sub', 'client_id', 'aud', 'scope', 'tenant_id', 'key_id', 'iat', 'exp', 'jti'],
  };
}

const OAUTH_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache' };

/** An RFC 6749 §5.2 error answer. */
export function oauthErrorResponse(error: OAuthError): ApiResponse {
  return {
    statusCode: error.status,
    headers: { ...OAUTH_HEADERS },
    body: JSON.stringify(error.toJSON() satisfies OAuthErrorBody),
  };
}

/** The token endpoint (contract §9): RFC 6749 answers, `Cache-Control: no-store`, never a 5xx for a caller's mistake. */
async function tokenRequest(request: ApiRequest, deps: ApiDependencies): Promise<ApiResponse> {
  try {
    // Credentials in a URL end up in logs: the token request is the body alone (RFC 6749 section 3.2).
    if (Object.keys(request.query).length > 0)
      throw new OAuthError(400, 'invalid_request', 'send the token request parameters in the body, not the query');
    if (Buffer.byteLength(request.body ?? '', 'utf8') > MAX_BODY_BYTES)
      throw new OAuthError(400, 'invalid_request', `the body is over ${MAX_BODY_BYTES} bytes`);
    const parameters = parseTokenRequest(request.headers['content-type'], request.body);
    const granted = await need(deps.tokenIssuer, 'token issuer').token(parameters, request.headers.authorization);
    return { statusCode: 200, headers: { ...OAUTH_HEADERS }, body: JSON.stringify(granted) };
  } catch (error) {
    if (error instanceof OAuthError) return oauthErrorResponse(error);
    const mapped = unavailable(error);
    deps.onServerError?.(error, request, mapped);
    return oauthErrorResponse(
      mapped && mapped.status === 503
        ? new OAuthError(503, 'temporarily_unavailable', 'a dependency of Keysmith is unavailable; retry with a new assertion')
        : new OAuthError(500, 'server_error', 'Keysmith failed to answer; retry with a new assertion'),
    );
  }
}

/**
 * The audit view of a tenant admin: a change made by a platform admin (an actor of another tenant) shows as made by
 * `{ type: 'platform_admin' }`, without the operator's clientId, keyId or source IP (the SaaS's own staff and
 * addresses are not the tenant's business); its request id stays, so a tenant can ask the operator about it.
 */
function tenantView(page: Page<ListedAuditEvent>, tenantId: string): Page<ListedAuditEvent> {
  return {
    ...page,
    items: page.items.map((event) => {
      if (!('actor' in event) || event.actor.type !== 'client' || event.actor.tenantId === tenantId) return event;
      const { sourceIp: _sourceIp, ...rest } = event;
      return { ...rest, actor: { type: 'platform_admin' } };
    }),
  };
}

async function discover(deps: ApiDependencies, clientId: string) {
  const found = await need(deps.store, 'store').getClientWithKeys(clientId);
  if (!found) throw new KeysmithError(404, 'client_not_found', 'Not found', `No service client ${clientId}.`);
  return found;
}

/** Serves one request. Never throws: every failure is a problem+json response. */
export async function handleApiRequest(request: ApiRequest, deps: ApiDependencies): Promise<ApiResponse> {
  if (request.route.id === 'token') return tokenRequest(request, deps);
  try {
    const result = await dispatch(request, deps);
    const headers: Record<string, string> = { 'cache-control': 'no-store', ...result.headers };
    if (result.text !== undefined) return { statusCode: result.status, headers, body: result.text };
    if (result.body === undefined) return { statusCode: result.status, headers, body: '' };
    return {
      statusCode: result.status,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(result.body),
    };
  } catch (error) {
    const mapped = error instanceof KeysmithError ? error : (unavailable(error) ?? error);
    const reported = mapped instanceof KeysmithError ? mapped : undefined;
    if (!reported || reported.status >= 500) deps.onServerError?.(error, request, reported);
    return problemResponse(mapped, isConsoleRoute(request.route.id) ? CONSOLE_HEADERS : {});
  }
}
