/**
 * The OpenAPI 3.1 document of the HTTP API (contract §5), generated from the route table and the same zod schemas
 * the handlers validate requests with and the views are typed against: one schema, many readers. The API serves it
 * at `GET /v1/openapi.json`, and the tests validate every response they receive against it.
 */
import { z } from 'zod';
import { ROUTES, type Route, type RouteAuth, type RouteId } from './routes.ts';
import {
  auditEventPageSchema,
  auditEventSchema,
  auditQuery,
  clientLocationSchema,
  clientPageSchema,
  clientViewSchema,
  createClientBody,
  createdKeySchema,
  createKeyBody,
  healthSchema,
  issuerJwksSchema,
  issuerMetadataSchema,
  jwksSchema,
  keyPageSchema,
  keyViewSchema,
  listQuery,
  oauthErrorSchema,
  openApiDocumentSchema,
  openidConfigurationSchema,
  pathParameters,
  problemSchema,
  publishedJwkSchema,
  rollKeyBody,
  tokenRequestSchema,
  tokenResponseSchema,
  updateClientBody,
  whoAmISchema,
} from './schemas.ts';

/** A JSON Schema (2020-12, the dialect of OpenAPI 3.1) as zod writes it. */
export type JsonSchema = Record<string, unknown>;

export interface OpenApiHeader {
  description: string;
  required?: boolean;
  schema: JsonSchema;
}

export interface OpenApiResponse {
  description: string;
  headers?: Record<string, OpenApiHeader>;
  /** By media type; absent for a response without a body (204). */
  content?: Record<string, { schema: JsonSchema }>;
}

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

export interface OpenApiOperation {
  operationId: RouteId;
  summary: string;
  description: string;
  tags: string[];
  security: Record<string, string[]>[];
  parameters?: OpenApiParameter[];
  requestBody?: { required: boolean; content: Record<string, { schema: JsonSchema }> };
  /** By status; error statuses refer to `#/components/responses/...`. */
  responses: Record<string, OpenApiResponse | { $ref: string }>;
}

export type OpenApiMethod = Lowercase<Route['method']>;

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } };
  servers: { url: string; description: string }[];
  tags: { name: string; description: string }[];
  paths: Record<string, Partial<Record<OpenApiMethod, OpenApiOperation>>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, OpenApiResponse>;
    securitySchemes: Record<string, Record<string, string>>;
  };
}

/** Response bodies by component name (`#/components/schemas/<name>`), converted as the API writes them. */
const RESPONSE_BODIES = {
  Client: clientViewSchema,
  ClientPage: clientPageSchema,
  PublishedJwk: publishedJwkSchema,
  AccessKey: keyViewSchema,
  AccessKeyPage: keyPageSchema,
  CreatedAccessKey: createdKeySchema,
  WhoAmI: whoAmISchema,
  Health: healthSchema,
  AuditEvent: auditEventSchema,
  AuditEventPage: auditEventPageSchema,
  OpenIdConfiguration: openidConfigurationSchema,
  Jwks: jwksSchema,
  OpenApiDocument: openApiDocumentSchema,
  IssuerMetadata: issuerMetadataSchema,
  IssuerJwks: issuerJwksSchema,
  TokenResponse: tokenResponseSchema,
  OAuthError: oauthErrorSchema,
  Problem: problemSchema,
} as const;
type ResponseBody = keyof typeof RESPONSE_BODIES;

/** Request bodies by component name, converted as the API reads them (before transforms such as UTC normalizing). */
const REQUEST_BODIES = {
  CreateClientRequest: createClientBody,
  UpdateClientRequest: updateClientBody,
  CreateAccessKeyRequest: createKeyBody,
  RollAccessKeyRequest: rollKeyBody,
  TokenRequest: tokenRequestSchema,
} as const;
type RequestBody = keyof typeof REQUEST_BODIES;

const TAGS = {
  Meta: 'Liveness, the caller’s own identity, and this document.',
  Clients: 'A tenant’s service clients (admin).',
  'Access keys': 'A client’s asymmetric access keys (admin). The private key of a generated key is shown once.',
  Audit: 'The tenant’s decrypted audit trail, newest first (admin).',
  Discovery: 'Each client’s OpenID configuration and JWKS, public so that any verifier can read them.',
  OAuth:
    'Keysmith as an OAuth 2.0 token issuer (contract §9): its metadata, its token-signing keys, and its token endpoint, whose errors are RFC 6749 JSON.',
  Console: 'The web console: a page and its assets, served with a strict Content-Security-Policy. Not an API to call.',
} as const;
type Tag = keyof typeof TAGS;

/** The problem+json statuses the API can answer, each a response under `#/components/responses/`. */
const ERROR_RESPONSES = {
  400: [
    'BadRequest',
    'The request is malformed: an unknown or repeated query parameter, a malformed path parameter or body (`invalid_request`, `malformed_json`, `missing_body`, `invalid_cursor`, ...).',
  ],
  401: ['Unauthorized', 'No valid client token (`unauthorized`).'],
  403: [
    'Forbidden',
    'The token is valid but may not do this: no admin scope, another tenant, or a scope the caller may not grant.',
  ],
  404: ['NotFound', 'No such client or key in this tenant (`client_not_found`, `key_not_found`).'],
  409: ['Conflict', 'The change conflicts with the current state (`key_limit_reached`, `last_platform_admin`).'],
  413: ['PayloadTooLarge', 'The body is larger than Keysmith accepts (`payload_too_large`).'],
  415: ['UnsupportedMediaType', 'A body that is not sent as `application/json` (`unsupported_media_type`).'],
  429: ['TooManyRequests', 'API Gateway throttled the request (`throttled`); retry later.'],
  500: ['InternalServerError', 'Keysmith failed (`internal_error`), or a stored item failed its integrity check.'],
  503: ['ServiceUnavailable', 'A dependency (DynamoDB, KMS, the authorizer) is unavailable; nothing was changed. Retry later.'],
  504: ['GatewayTimeout', 'The request timed out behind API Gateway (`upstream_timeout`); its outcome is unknown.'],
} as const satisfies Record<number, readonly [string, string]>;
type ErrorStatus = keyof typeof ERROR_RESPONSES;

/**
 * Errors any route can answer: a refused query parameter (400), a body too large for the server or API Gateway,
 * refused before routing (413), API Gateway's throttling (429) and timeout (504), and a failure of Keysmith (500).
 */
const COMMON_ERRORS: readonly ErrorStatus[] = [400, 413, 429, 500, 504];

/** Errors of the token check in front of a route: no valid token (401), not allowed (403), authorizer down (503). */
const AUTH_ERRORS: Record<RouteAuth, readonly ErrorStatus[]> = { none: [], client: [401, 403, 503], admin: [401, 403, 503] };

const AUTH_DESCRIPTION: Record<RouteAuth, string> = {
  none: 'Public: no token.',
  client: 'Needs a client token (any client).',
  admin: 'Needs a client token with `keysmith:admin` for this tenant, or `keysmith:platform-admin`.',
};

/** What the document says of one route, beyond the route table. */
interface OperationSpec {
  summary: string;
  description: string;
  tag: Tag;
  /** The query parameters the route accepts; without it, any query parameter is refused (400). */
  query?: z.ZodObject;
  body?: { schema: RequestBody; required: boolean; mediaType?: 'application/x-www-form-urlencoded' };
  /** Errors in RFC 6749 §5.2 JSON, by status, instead of problem+json (the token endpoint). */
  oauthErrors?: Partial<Record<400 | 401 | 500 | 503, string>>;
  success: {
    status: 200 | 201 | 204;
    description: string;
    body?: ResponseBody;
    /** Or a text body of one of these media types (the console's page and assets). */
    text?: readonly string[];
    headers?: Record<string, OpenApiHeader>;
  };
  /** Error statuses of this route besides {@link COMMON_ERRORS} and those of its auth ({@link AUTH_ERRORS}). */
  errors: readonly ErrorStatus[];
}

/** The Location of a created client: its own path. */
const clientLocation: OpenApiHeader = {
  description: 'The new client’s path, `/v1/tenants/{tenantId}/clients/{clientId}`.',
  required: true,
  schema: { ...component(z.toJSONSchema(clientLocationSchema)), format: 'uri-reference' },
};

/**
 * Every route's documentation, by route id: a route added to the table without an entry here does not compile.
 * Error statuses follow what api.ts and the services throw for that route.
 */
export const OPERATIONS: Record<RouteId, OperationSpec> = {
  health: {
    summary: 'Liveness',
    description: 'Answers while the API is up; reads nothing.',
    tag: 'Meta',
    success: { status: 200, description: 'The API is up.', body: 'Health' },
    errors: [],
  },
  whoami: {
    summary: 'The calling client',
    description: 'The authorizer’s context for the caller’s token (contract §4): all values strings, scopes space-separated.',
    tag: 'Meta',
    success: { status: 200, description: 'Who the token belongs to.', body: 'WhoAmI' },
    errors: [],
  },
  createClient: {
    summary: 'Create a service client',
    description: 'Creates a client in the tenant. Scopes under `keysmith:` only a caller holding them may grant.',
    tag: 'Clients',
    body: { schema: 'CreateClientRequest', required: true },
    success: { status: 201, description: 'The client created.', body: 'Client', headers: { Location: clientLocation } },
    errors: [415],
  },
  listClients: {
    summary: 'List service clients',
    description: 'The tenant’s clients, a page at a time.',
    tag: 'Clients',
    query: listQuery,
    success: { status: 200, description: 'A page of clients.', body: 'ClientPage' },
    errors: [],
  },
  getClient: {
    summary: 'Read a service client',
    description: 'One client of the tenant; a client of another tenant is not found.',
    tag: 'Clients',
    success: { status: 200, description: 'The client.', body: 'Client' },
    errors: [404],
  },
  updateClient: {
    summary: 'Change a service client',
    description:
      'Changes the fields given; `scopes` and `tags` replace the whole list or map. A disabled client’s tokens stop working within the revocation bound.',
    tag: 'Clients',
    body: { schema: 'UpdateClientRequest', required: true },
    success: { status: 200, description: 'The client as changed.', body: 'Client' },
    errors: [404, 409, 415],
  },
  deleteClient: {
    summary: 'Delete a service client',
    description: 'Deletes the client and revokes all its keys.',
    tag: 'Clients',
    success: { status: 204, description: 'Deleted.' },
    errors: [404, 409],
  },
  createKey: {
    summary: 'Create an access key',
    description:
      'Generates a key pair (the answer holds the access key, once), or registers the caller’s own public key. At most 5 active keys per client.',
    tag: 'Access keys',
    body: { schema: 'CreateAccessKeyRequest', required: false },
    success: { status: 201, description: 'The key created.', body: 'CreatedAccessKey' },
    errors: [404, 409, 415],
  },
  listKeys: {
    summary: 'List a client’s access keys',
    description: 'The client’s keys with their public halves, a page at a time; never a private key.',
    tag: 'Access keys',
    query: listQuery,
    success: { status: 200, description: 'A page of keys.', body: 'AccessKeyPage' },
    errors: [404],
  },
  rollKey: {
    summary: 'Roll an access key',
    description:
      'Adds a new key (generated, or your own `publicKey`) and ends the old one’s life at the earlier of its own expiry and now + `gracePeriodSeconds` (contract §10): deploy the new key, and let the old one run out. The old key stops counting toward the 5-key limit at once. A revoked, expired or already rolling key is 409 `key_not_active`.',
    tag: 'Access keys',
    body: { schema: 'RollAccessKeyRequest', required: false },
    success: { status: 201, description: 'The new key.', body: 'CreatedAccessKey' },
    errors: [404, 409, 415],
  },
  revokeKey: {
    summary: 'Revoke an access key',
    description: 'Its tokens stop working within the revocation bound.',
    tag: 'Access keys',
    success: { status: 204, description: 'Revoked.' },
    errors: [404, 409],
  },
  listAuditEvents: {
    summary: 'List audit events',
    description:
      'Decrypted audit records of the tenant, newest first. A tenant admin sees a platform admin’s change as made by `{ "type": "platform_admin" }`.',
    tag: 'Audit',
    query: auditQuery,
    success: { status: 200, description: 'A page of audit records.', body: 'AuditEventPage' },
    errors: [],
  },
  openidConfiguration: {
    summary: 'A client’s OpenID configuration',
    description: 'The issuer of the client’s tokens and where its public keys are.',
    tag: 'Discovery',
    success: { status: 200, description: 'The configuration.', body: 'OpenIdConfiguration' },
    errors: [404, 503],
  },
  jwks: {
    summary: 'A client’s JWKS',
    description: 'The client’s active public keys (none while it is disabled).',
    tag: 'Discovery',
    success: { status: 200, description: 'The key set.', body: 'Jwks' },
    errors: [404, 503],
  },
  issuerMetadata: {
    summary: 'The token issuer’s metadata',
    description:
      'OpenID Connect Discovery metadata of Keysmith as an OAuth 2.0 token issuer: its token endpoint and JWKS, the grants and the client authentication (private_key_jwt) it takes.',
    tag: 'OAuth',
    success: { status: 200, description: 'The metadata.', body: 'IssuerMetadata' },
    errors: [404, 503],
  },
  authorizationServerMetadata: {
    summary: 'The token issuer’s metadata (RFC 8414)',
    description: 'The same metadata as `/.well-known/openid-configuration`, under the name RFC 8414 gives it.',
    tag: 'OAuth',
    success: { status: 200, description: 'The metadata.', body: 'IssuerMetadata' },
    errors: [404, 503],
  },
  issuerJwks: {
    summary: 'The token issuer’s JWKS',
    description: 'The public keys access tokens are signed with (RS256): during a rotation, the next or retiring key too.',
    tag: 'OAuth',
    success: { status: 200, description: 'The key set.', body: 'IssuerJwks' },
    errors: [404, 503],
  },
  token: {
    summary: 'Get an access token',
    description:
      'RFC 6749 token request, form-encoded: `client_credentials` with a `private_key_jwt` client assertion (RFC 7523 §2.2), or the `jwt-bearer` grant (RFC 7523 §2.1). The assertion is a client token with `aud` the issuer base, a single-use `jti` and a lifetime of at most 300 s.',
    tag: 'OAuth',
    body: { schema: 'TokenRequest', required: true, mediaType: 'application/x-www-form-urlencoded' },
    success: {
      status: 200,
      description: 'The access token (RFC 9068).',
      body: 'TokenResponse',
      headers: {
        'Cache-Control': { description: 'Always `no-store`.', required: true, schema: { const: 'no-store' } },
      },
    },
    errors: [],
    oauthErrors: {
      400: 'A malformed request or a refused grant: `invalid_request`, `invalid_grant`, `invalid_scope`, `invalid_target`, `unsupported_grant_type`.',
      401: 'The client assertion failed a rule (`invalid_client`).',
      500: 'Keysmith failed (`server_error`).',
      503: 'A dependency is unavailable (`temporarily_unavailable`); retry with a new assertion.',
    },
  },
  console: {
    summary: 'The console',
    description:
      'The web console’s page (also at `/console/`). Signing in, it imports an admin’s access key into the browser, which signs a short-lived client token for each call; the key is never sent.',
    tag: 'Console',
    success: { status: 200, description: 'The page.', text: ['text/html'] },
    errors: [404],
  },
  consoleAsset: {
    summary: 'A console asset',
    description: 'A script or style sheet of the console, named by its content’s hash and cacheable for a year.',
    tag: 'Console',
    success: { status: 200, description: 'The file.', text: ['text/javascript', 'text/css'] },
    errors: [404],
  },
  openapi: {
    summary: 'This document',
    description: 'The OpenAPI 3.1 document of this API.',
    tag: 'Meta',
    success: { status: 200, description: 'The document.', body: 'OpenApiDocument' },
    errors: [],
  },
};

/** zod's output as a component: its `$schema` and `$id` say nothing inside an OpenAPI document. */
function component({ $schema: _schema, $id: _id, ...schema }: JsonSchema): JsonSchema {
  return schema;
}

/** Converts a set of named schemas at once, so a schema used inside another becomes a `$ref` to its component. */
function components(schemas: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const converted = z.toJSONSchema(registry, { io, uri: (id) => `#/components/schemas/${id}` }).schemas;
  return Object.fromEntries(Object.entries(converted).map(([id, schema]) => [id, component(schema as JsonSchema)]));
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** A problem+json response whose `status` member is the HTTP status. */
function problemResponse(status: ErrorStatus): OpenApiResponse {
  return {
    description: ERROR_RESPONSES[status][1],
    content: {
      'application/problem+json': { schema: { allOf: [ref('Problem'), { properties: { status: { const: status } } }] } },
    },
  };
}

/** A parameter's description is the parameter's, not its schema's (where tools show it). */
const describedBy = (description: unknown): { description?: string } => (typeof description === 'string' ? { description } : {});

/** The path parameters of a route, from its `{name}`s and their schemas. */
function pathParametersOf(route: Route): OpenApiParameter[] {
  return [...route.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => {
    const schema = pathParameters[name as keyof typeof pathParameters];
    if (!schema) throw new Error(`route ${route.id}: no schema for path parameter ${name}`);
    const { description, ...parameter } = component(z.toJSONSchema(schema, { io: 'input' }));
    return { name: name as string, in: 'path', required: true, ...describedBy(description), schema: parameter };
  });
}

/** The query parameters of a query schema, as the API reads them (strings, before `limit` becomes a number). */
function queryParametersOf(query: z.ZodObject): OpenApiParameter[] {
  const { properties = {}, required = [] } = z.toJSONSchema(query, { io: 'input' }) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(properties).map(([name, { description, ...schema }]) => ({
    name,
    in: 'query',
    required: required.includes(name),
    ...describedBy(description),
    schema,
  }));
}

function operation(route: Route): OpenApiOperation {
  const spec = OPERATIONS[route.id];
  const { success } = spec;
  const responses: OpenApiOperation['responses'] = {
    [success.status]: {
      description: success.description,
      ...(success.headers ? { headers: success.headers } : {}),
      ...(success.body ? { content: { 'application/json': { schema: ref(success.body) } } } : {}),
      ...(success.text
        ? { content: Object.fromEntries(success.text.map((type) => [type, { schema: { type: 'string' } }])) }
        : {}),
    },
  };
  const oauthErrors = Object.entries(spec.oauthErrors ?? {});
  // API Gateway's own answers (a body too large for it, throttling, a timeout) stay problem+json on every route.
  const errors = new Set([...COMMON_ERRORS, ...AUTH_ERRORS[route.auth], ...spec.errors]);
  for (const [status] of oauthErrors) errors.delete(Number(status) as ErrorStatus);
  for (const status of [...errors].sort((a, b) => a - b))
    responses[status] = { $ref: `#/components/responses/${ERROR_RESPONSES[status][0]}` };
  for (const [status, description] of oauthErrors)
    responses[status] = { description, content: { 'application/json': { schema: ref('OAuthError') } } };
  const parameters = [...pathParametersOf(route), ...(spec.query ? queryParametersOf(spec.query) : [])];
  return {
    operationId: route.id,
    summary: spec.summary,
    description: `${spec.description} ${AUTH_DESCRIPTION[route.auth]}`,
    tags: [spec.tag],
    security: route.auth === 'none' ? [] : [{ bearerAuth: [] }],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(spec.body
      ? {
          requestBody: {
            required: spec.body.required,
            content: { [spec.body.mediaType ?? 'application/json']: { schema: ref(spec.body.schema) } },
          },
        }
      : {}),
    responses,
  };
}

/** Options of {@link buildOpenApiDocument}. */
export interface OpenApiOptions {
  /** The deployment's base URL (the issuer base), the document's one server. */
  serverUrl: string;
}

/** Builds the OpenAPI 3.1 document of every route in the route table. */
export function buildOpenApiDocument({ serverUrl }: OpenApiOptions): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const route of ROUTES) {
    const methods = paths[route.path] ?? {};
    methods[route.method.toLowerCase() as OpenApiMethod] = operation(route);
    paths[route.path] = methods;
  }
  const document: OpenApiDocument = {
    openapi: '3.1.0',
    info: {
      title: 'Keysmith',
      // The API's version is the one in its paths.
      version: 'v1',
      description:
        'Self-hosted API keys for a SaaS: service clients, asymmetric access keys, client tokens and their discovery documents. Every error is RFC 9457 `application/problem+json` with a stable `code`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: serverUrl, description: 'This deployment.' }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: { ...components(RESPONSE_BODIES, 'output'), ...components(REQUEST_BODIES, 'input') },
      responses: Object.fromEntries(
        Object.entries(ERROR_RESPONSES).map(([status, [name]]) => [name, problemResponse(Number(status) as ErrorStatus)]),
      ),
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'A client token: a JWT the client signs with its access key (contract §3).',
        },
      },
    },
  };
  return document;
}
