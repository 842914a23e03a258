/**
 * The route table (contract §5), as data. The CDK stack builds API Gateway from it and the local server
 * serves it, so the two cannot drift apart.
 */

/** The Lambda functions that serve routes (each is `lambdas/<name>/handler.ts`). */
export type RouteFunction = 'management' | 'discovery' | 'token';

/** none: public; client: any valid client token; admin: a client token with an admin scope for the tenant. */
export type RouteAuth = 'none' | 'client' | 'admin';

export interface Route {
  id: RouteId;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** API Gateway resource path, with `{name}` parameters. */
  path: string;
  function: RouteFunction;
  auth: RouteAuth;
}

export type RouteId =
  | 'health'
  | 'whoami'
  | 'createClient'
  | 'listClients'
  | 'getClient'
  | 'updateClient'
  | 'deleteClient'
  | 'createKey'
  | 'listKeys'
  | 'revokeKey'
  | 'rollKey'
  | 'listAuditEvents'
  | 'openidConfiguration'
  | 'jwks'
  | 'openapi'
  | 'issuerMetadata'
  | 'authorizationServerMetadata'
  | 'issuerJwks'
  | 'token'
  | 'console'
  | 'consoleAsset';

const CLIENTS = '/v1/tenants/{tenantId}/clients';
const CLIENT = `${CLIENTS}/{clientId}`;
const KEYS = `${CLIENT}/access-keys`;
const DISCOVERY = '/v1/clients/{clientId}/.well-known/openid-configuration';
/** The token endpoint, under the issuer base (contract §9). */
export const TOKEN_ENDPOINT_PATH = '/v1/oauth/token';
/** The console's page (`/console/` too: a trailing slash is ignored, as API Gateway ignores it). */
export const CONSOLE_PATH = '/console';

export const ROUTES: readonly Route[] = [
  { id: 'health', method: 'GET', path: '/v1/health', function: 'discovery', auth: 'none' },
  { id: 'whoami', method: 'GET', path: '/v1/whoami', function: 'discovery', auth: 'client' },
  { id: 'createClient', method: 'POST', path: CLIENTS, function: 'management', auth: 'admin' },
  { id: 'listClients', method: 'GET', path: CLIENTS, function: 'management', auth: 'admin' },
  { id: 'getClient', method: 'GET', path: CLIENT, function: 'management', auth: 'admin' },
  { id: 'updateClient', method: 'PATCH', path: CLIENT, function: 'management', auth: 'admin' },
  { id: 'deleteClient', method: 'DELETE', path: CLIENT, function: 'management', auth: 'admin' },
  { id: 'createKey', method: 'POST', path: KEYS, function: 'management', auth: 'admin' },
  { id: 'listKeys', method: 'GET', path: KEYS, function: 'management', auth: 'admin' },
  { id: 'revokeKey', method: 'DELETE', path: `${KEYS}/{keyId}`, function: 'management', auth: 'admin' },
  { id: 'rollKey', method: 'POST', path: `${KEYS}/{keyId}/roll`, function: 'management', auth: 'admin' },
  { id: 'listAuditEvents', method: 'GET', path: '/v1/tenants/{tenantId}/audit-events', function: 'management', auth: 'admin' },
  { id: 'openidConfiguration', method: 'GET', path: DISCOVERY, function: 'discovery', auth: 'none' },
  { id: 'jwks', method: 'GET', path: `${DISCOVERY}/jwks`, function: 'discovery', auth: 'none' },
  // The OpenAPI document of this table (shared/openapi.ts), public like the other discovery documents.
  { id: 'openapi', method: 'GET', path: '/v1/openapi.json', function: 'discovery', auth: 'none' },
  // Keysmith as an OAuth 2.0 token issuer (contract §9): its metadata under both names, its keys, its token endpoint.
  { id: 'issuerMetadata', method: 'GET', path: '/.well-known/openid-configuration', function: 'discovery', auth: 'none' },
  {
    id: 'authorizationServerMetadata',
    method: 'GET',
    path: '/.well-known/oauth-authorization-server',
    function: 'discovery',
    auth: 'none',
  },
  { id: 'issuerJwks', method: 'GET', path: '/.well-known/jwks.json', function: 'discovery', auth: 'none' },
  // Its own function: the only one that signs (kms:Sign) and the only writer of jti records.
  { id: 'token', method: 'POST', path: TOKEN_ENDPOINT_PATH, function: 'token', auth: 'none' },
  // The console (console/): a page and its hashed assets, public; what it does, it does with the signed-in admin's tokens.
  { id: 'console', method: 'GET', path: CONSOLE_PATH, function: 'discovery', auth: 'none' },
  { id: 'consoleAsset', method: 'GET', path: `${CONSOLE_PATH}/{asset}`, function: 'discovery', auth: 'none' },
];

/** The route API Gateway matched, by its resource path and method. */
export function routeFor(method: string, resourcePath: string): Route | undefined {
  return ROUTES.find((route) => route.method === method && route.path === resourcePath);
}

const compiled = ROUTES.map((route) => ({
  route,
  pattern: new RegExp(`^${route.path.replace(/[.]/g, '\\.').replace(/\{(\w+)\}/g, (_, name: string) => `(?<${name}>[^/]+)`)}$`),
}));

/** Matches a concrete path (as the local server receives it) against the table. */
export function matchPath(
  method: string,
  path: string,
): { route: Route; pathParameters: Record<string, string> } | { allow: string[] } | undefined {
  const allow: string[] = [];
  // As API Gateway routes: `/console/` is `/console`.
  if (path.length > 1) path = path.replace(/\/+$/, '');
  for (const { route, pattern } of compiled) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (route.method === method) {
      const pathParameters: Record<string, string> = {};
      for (const [name, value] of Object.entries(match.groups ?? {})) pathParameters[name] = safeDecode(value);
      return { route, pathParameters };
    }
    allow.push(route.method);
  }
  return allow.length > 0 ? { allow } : undefined;
}

/** Percent-decodes a path segment; a malformed escape is kept as is (validation then refuses it). */
function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
