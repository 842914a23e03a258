/**
 * The shapes of every request body, path and query parameter (contract §5), validated with zod, and of every
 * response body the API sends. The handlers parse requests with them, the views in api.ts are typed against them,
 * and shared/openapi.ts turns them into the OpenAPI document the tests validate every response against.
 */
import { z } from 'zod';
import { AUDIT_ACTIONS } from './audit/log.ts';
import { InvalidRequestError } from './errors.ts';
import { CLIENT_ID, KEY_ID, SCOPE_TOKEN, TENANT_ID } from './ids.ts';
import { ALGORITHMS, ROLL_GRACE_SECONDS } from './model.ts';

export const MAX_SCOPES = 50;
export const MAX_TAGS = 20;

const scopes = z
  .array(z.string().max(256, 'a scope is at most 256 characters').regex(SCOPE_TOKEN, 'not an RFC 6749 scope-token'))
  .max(MAX_SCOPES, `at most ${MAX_SCOPES} scopes`)
  .refine((list) => new Set(list).size === list.length, 'scopes must not repeat');

/**
 * Characters that could drive a terminal or disguise text: C0 (U+0000–U+001F, so tab and newline too), DEL, C1
 * (U+0080–U+009F), and the bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
 * Names, descriptions, tag keys and tag values refuse them (contract §14).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** `schema` refusing {@link CONTROL_CHARACTERS}; the message names `field` and never echoes the value. */
export function withoutControlCharacters<S extends z.ZodString>(schema: S, field: string): S {
  return schema.refine(
    (value) => !CONTROL_CHARACTERS.test(value),
    `${field} must not contain control characters (C0 such as tab or newline, DEL, C1) or bidirectional controls`,
  );
}

const tags = z
  .record(
    withoutControlCharacters(z.string(), 'a tag key')
      .min(1, 'a tag key must not be empty')
      .max(64, 'a tag key is at most 64 characters'),
    withoutControlCharacters(z.string(), 'a tag value').max(256, 'a tag value is at most 256 characters'),
  )
  .refine((record) => Object.keys(record).length <= MAX_TAGS, `at most ${MAX_TAGS} tags`);

// The control check runs before trim, so a leading or trailing tab or newline is refused, not trimmed away.
const name = withoutControlCharacters(z.string(), 'name')
  .trim()
  .min(1, 'name must not be empty')
  .max(128, 'name is at most 128 characters');
const description = withoutControlCharacters(z.string(), 'description').max(1024, 'description is at most 1024 characters');

const MIN_INSTANT_MS = Date.parse('0000-01-01T00:00:00.000Z');
const MAX_INSTANT_MS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * An ISO 8601 date-time with a time zone, compared as an instant: refused outside the years 0000 to 9999 once
 * converted to UTC (`9999-12-31T23:59:59-14:00` is in the year 10000), and normalized to UTC ISO
 * (`2020-01-01T10:00:00+05:00` becomes `2020-01-01T05:00:00.000Z`), so later comparisons see canonical strings.
 */
function instant(field: string) {
  return z.iso
    .datetime({ offset: true, message: `${field} is an ISO 8601 date-time with a time zone, e.g. 2027-01-31T00:00:00Z` })
    .transform((value, ctx) => {
      const ms = Date.parse(value);
      // NaN fails both comparisons too.
      if (!(ms >= MIN_INSTANT_MS && ms <= MAX_INSTANT_MS)) {
        ctx.issues.push({
          code: 'custom',
          input: value,
          message: `${field} must be from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z once converted to UTC`,
        });
        return z.NEVER;
      }
      return new Date(ms).toISOString();
    });
}

const futureTime = (field: string) =>
  instant(field).refine((value) => Date.parse(value) > Date.now(), `${field} must be in the future`);

export const createClientBody = z.strictObject({
  name,
  description: description.optional(),
  scopes: scopes.optional(),
  tags: tags.optional(),
});
export type CreateClientBody = z.infer<typeof createClientBody>;

export const updateClientBody = z
  .strictObject({
    name: name.optional(),
    description: description.optional(),
    scopes: scopes.optional(),
    tags: tags.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'name at least one field to change')
  // The refinement as JSON Schema, for the document (zod cannot translate a refinement itself).
  .meta({ minProperties: 1 });
export type UpdateClientBody = z.infer<typeof updateClientBody>;

export const createKeyBody = z.strictObject({
  algorithm: z.enum(ALGORITHMS).optional(),
  expiresAt: futureTime('expiresAt').optional().meta({ description: 'When the key stops working: an instant in the future.' }),
  publicKey: z
    .record(z.string(), z.unknown())
    .optional()
    .meta({ description: 'Register your own public key (a public JWK: Ed25519, P-256 or RSA of at least 2048 bits).' }),
});
export type CreateKeyBody = z.infer<typeof createKeyBody>;

export const rollKeyBody = z.strictObject({
  ...createKeyBody.shape,
  gracePeriodSeconds: z
    .number()
    .int('gracePeriodSeconds is a whole number of seconds')
    .min(0, 'gracePeriodSeconds is at least 0')
    .max(ROLL_GRACE_SECONDS.max, `gracePeriodSeconds is at most ${ROLL_GRACE_SECONDS.max} (30 days)`)
    .optional()
    .meta({
      description: `How long the old key keeps working, in seconds (0 to ${ROLL_GRACE_SECONDS.max}; ${ROLL_GRACE_SECONDS.default} when absent), never past its own expiry.`,
    }),
  algorithm: createKeyBody.shape.algorithm.meta({
    description:
      'The new key’s algorithm; the old key’s when absent. With your own `publicKey` it follows from the key (a different one is 400 `algorithm_mismatch`).',
  }),
});
export type RollKeyBody = z.infer<typeof rollKeyBody>;

// A query parameter arrives as a string: the document shows that input (a string of digits), the handler the number.
const limit = z
  .string()
  .regex(/^[0-9]{1,3}$/, 'limit is a whole number from 1 to 100')
  .transform(Number)
  .pipe(z.number().int().min(1, 'limit is at least 1').max(100, 'limit is at most 100'))
  .default(20)
  .meta({ description: 'Items per page, a whole number from 1 to 100; 20 when absent.' });
const cursor = z.string().min(1).max(1024).meta({ description: 'Where to continue: the `nextCursor` of the previous page.' });

export const listQuery = z.strictObject({ limit, cursor: cursor.optional() });
export const auditQuery = z.strictObject({
  limit,
  cursor: cursor.optional(),
  from: instant('from').optional().meta({ description: 'Only records at or after this instant (ISO 8601 with a time zone).' }),
  to: instant('to').optional().meta({ description: 'Only records at or before this instant (ISO 8601 with a time zone).' }),
  action: z.enum(AUDIT_ACTIONS).optional().meta({ description: 'Only records of this action.' }),
});
export const emptyQuery = z.strictObject({});

export const pathParameters = {
  tenantId: z
    .string()
    .regex(TENANT_ID, 'tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$')
    .meta({ description: 'The tenant: lower-case letters, digits, `_` and `-`, at most 63.' }),
  clientId: z
    .string()
    .regex(CLIENT_ID, 'clientId must look like sc_ followed by 22 letters and digits')
    .meta({ description: 'The service client: `sc_` and 22 letters and digits.' }),
  keyId: z
    .string()
    .regex(KEY_ID, 'keyId is 8 to 16 letters and digits')
    .meta({ description: 'The access key: 8 to 16 letters and digits.' }),
  asset: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'asset is a file name of the console')
    .meta({ description: 'A file of the console, as its page names it (`app-<hash>.js`, `app-<hash>.css`).' }),
} as const;

/** Field names from the input (unknown fields, record keys) in a message: control characters as `\\uXXXX`. */
const escapeControls = (text: string): string =>
  text.replace(new RegExp(CONTROL_CHARACTERS.source, 'g'), (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * Parses `input` with `schema`, or throws a 400 problem that lists each issue with its path.
 * Issues name where and what, never echo the value (it might be a secret pasted in the wrong place).
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    // A refused record key (a tag key) is named by where it is, not echoed: its own path ends with the key.
    const path = issue.code === 'invalid_key' ? issue.path.slice(0, -1) : issue.path;
    return {
      path: [where, ...path.map((segment) => escapeControls(String(segment)))].join('.'),
      message:
        issue.code === 'unrecognized_keys'
          ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.map(escapeControls).join(', ')}`
          : issue.code === 'invalid_type'
            ? `expected ${issue.expected}`
            : issue.code === 'invalid_key'
              ? (issue.issues[0]?.message ?? 'invalid key')
              : issue.message,
    };
  });
  const first = issues[0];
  throw new InvalidRequestError(
    first ? `${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}` : `invalid ${where}`,
    'invalid_request',
    { errors: issues },
  );
}

// Responses. They describe what the views in api.ts build, strictly (no unknown members), so a view that gains or
// loses a member fails to compile there, and a response that differs from the document fails the tests.

/** The part of an anchored pattern between `^` and `$`, to compose patterns. */
const inner = (pattern: RegExp): string => pattern.source.replace(/^\^/, '').replace(/\$$/, '');

const utcTime = z.iso.datetime().meta({ description: 'ISO 8601 UTC.' });
const clientIdSchema = z.string().regex(CLIENT_ID);
const tenantIdSchema = z.string().regex(TENANT_ID);
const keyIdSchema = z.string().regex(KEY_ID);
const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/);

/** A service client as the API shows it. */
export const clientViewSchema = z.strictObject({
  clientId: clientIdSchema,
  tenantId: tenantIdSchema,
  name: z.string(),
  description: z.string().optional(),
  scopes: z.array(z.string()),
  tags: z.record(z.string(), z.string()),
  enabled: z.boolean(),
  createdAt: utcTime,
  updatedAt: utcTime,
  lastUsedAt: utcTime.optional().meta({
    description: 'The latest use of any of its keys (contract §11), accurate to the deployment’s window; absent if never used.',
  }),
  issuer: z.url().meta({ description: 'The `iss` of the client’s tokens: `{issuerBase}/v1/clients/{clientId}`.' }),
});
export type ClientView = z.output<typeof clientViewSchema>;

/** The `Location` of a created client: its own path. */
export const clientLocationSchema = z.string().regex(new RegExp(`^/v1/tenants/${inner(TENANT_ID)}/clients/${inner(CLIENT_ID)}$`));

const jwkMembers = { kid: keyIdSchema, alg: z.enum(ALGORITHMS), use: z.literal('sig') };

/** A published public key: the public JWK with `kid` (the keyId), `alg` and `use: "sig"`; never a private member. */
export const publishedJwkSchema = z.discriminatedUnion('kty', [
  z.strictObject({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: base64url, ...jwkMembers }),
  z.strictObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: base64url, y: base64url, ...jwkMembers }),
  z.strictObject({ kty: z.literal('RSA'), n: base64url, e: base64url, ...jwkMembers }),
]);
export type PublishedJwk = z.output<typeof publishedJwkSchema>;

/** An access key as the API shows it: the public half only. */
export const keyViewSchema = z.strictObject({
  keyId: keyIdSchema,
  clientId: clientIdSchema,
  algorithm: z.enum(ALGORITHMS),
  publicKey: publishedJwkSchema,
  origin: z.enum(['generated', 'registered']),
  status: z
    .enum(['active', 'rolling', 'revoked', 'expired'])
    .meta({ description: '`rolling`: rolled, and still working until `expiresAt`, the end of its grace period.' }),
  createdAt: utcTime,
  expiresAt: utcTime.optional(),
  revokedAt: utcTime.optional(),
  rolledAt: utcTime.optional().meta({ description: 'When the key was rolled.' }),
  replacedBy: keyIdSchema.optional().meta({ description: 'The key it was rolled to.' }),
  lastUsedAt: utcTime.optional().meta({
    description:
      'When it last signed an accepted token (contract §11), accurate to the deployment’s window; absent if never used.',
  }),
});
export type KeyView = z.output<typeof keyViewSchema>;

/** The answer to creating a key: the key view, with the access key when Keysmith generated the pair. */
export const createdKeySchema = keyViewSchema.extend({
  accessKey: z
    .string()
    .regex(new RegExp(`^${inner(CLIENT_ID)}\\.${inner(KEY_ID)}\\.${inner(TENANT_ID)}\\.[A-Za-z0-9+/]+={0,2}$`))
    .optional()
    .meta({
      description:
        '`{clientId}.{keyId}.{tenantId}.{privateKey}`, only for a generated key and only in this answer: store it as a secret.',
    }),
});
export type CreatedKey = z.output<typeof createdKeySchema>;

/** One page of a list: `nextCursor` is absent on the last page. */
const pageOf = <T extends z.ZodType>(item: T) =>
  z.strictObject({ items: z.array(item), nextCursor: z.string().min(1).optional() });

export const clientPageSchema = pageOf(clientViewSchema);
export type ClientPage = z.output<typeof clientPageSchema>;
export const keyPageSchema = pageOf(keyViewSchema);
export type KeyPage = z.output<typeof keyPageSchema>;

/** `GET /v1/whoami`: the authorizer's context (contract §4), all values strings, scopes space-separated. */
export const whoAmISchema = z.strictObject({
  clientId: clientIdSchema,
  tenantId: tenantIdSchema,
  keyId: keyIdSchema,
  scopes: z.string(),
});
export type WhoAmI = z.output<typeof whoAmISchema>;

export const healthSchema = z.strictObject({ status: z.literal('ok') });
export type Health = z.output<typeof healthSchema>;

/** Who made a change; `platform_admin` only in a tenant admin's view of a platform admin's change. */
const actorSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('client'),
    clientId: clientIdSchema,
    tenantId: tenantIdSchema,
    keyId: z.string(),
    scopes: z.array(z.string()),
  }),
  z.strictObject({ type: z.literal('system'), name: z.string() }),
  z.strictObject({ type: z.literal('platform_admin') }),
]);

const auditRecord = {
  eventId: z.string(),
  tenantId: tenantIdSchema,
  // Its place in the tenant's chain, once the linker has linked it (a record of the last moment may not have one yet).
  seq: z.number().int().min(1).optional(),
  occurredAt: utcTime,
};

/** A listed audit record: decrypted, or marked `integrity: "failed"` when its content did not authenticate. */
export const auditEventSchema = z.union([
  z.strictObject({
    ...auditRecord,
    action: z.enum(AUDIT_ACTIONS),
    actor: actorSchema,
    target: z.strictObject({ clientId: clientIdSchema, keyId: keyIdSchema.optional() }),
    details: z.record(z.string(), z.unknown()),
    requestId: z.string().optional(),
    sourceIp: z.string().optional(),
  }),
  z.strictObject({ ...auditRecord, action: z.string(), integrity: z.literal('failed') }),
]);
export const auditEventPageSchema = pageOf(auditEventSchema);
export type AuditEventPage = z.output<typeof auditEventPageSchema>;

/** A client's OpenID configuration: where its keys are and what its tokens may carry. */
export const openidConfigurationSchema = z.strictObject({
  issuer: z.url(),
  jwks_uri: z.url(),
  subject_types_supported: z.array(z.string()),
  id_token_signing_alg_values_supported: z.array(z.enum(ALGORITHMS)),
  token_endpoint_auth_signing_alg_values_supported: z.array(z.enum(ALGORITHMS)),
  claims_supported: z.array(z.string()),
});
export type OpenIdConfiguration = z.output<typeof openidConfigurationSchema>;

/** A client's active public keys. */
export const jwksSchema = z.strictObject({ keys: z.array(publishedJwkSchema) });
export type Jwks = z.output<typeof jwksSchema>;

/** The deployment's metadata as an OAuth 2.0 authorization server (contract §9, RFC 8414, OpenID Connect Discovery). */
export const issuerMetadataSchema = z.strictObject({
  issuer: z.url(),
  token_endpoint: z.url(),
  jwks_uri: z.url(),
  grant_types_supported: z.array(z.string()),
  token_endpoint_auth_methods_supported: z.array(z.literal('private_key_jwt')),
  token_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
  subject_types_supported: z.array(z.string()),
  id_token_signing_alg_values_supported: z.array(z.literal('RS256')),
  claims_supported: z.array(z.string()),
});
export type IssuerMetadata = z.output<typeof issuerMetadataSchema>;

/** A token-signing public key of the deployment (RSA, RS256). */
export const issuerJwkSchema = z.strictObject({
  kty: z.literal('RSA'),
  n: z.string().regex(/^[A-Za-z0-9_-]+$/),
  e: z.string().regex(/^[A-Za-z0-9_-]+$/),
  kid: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'the RFC 7638 thumbprint of the key'),
  alg: z.literal('RS256'),
  use: z.literal('sig'),
});
/** The deployment's token-signing keys: the signing one, and during a rotation the next or the retiring one. */
export const issuerJwksSchema = z.strictObject({ keys: z.array(issuerJwkSchema) });
export type IssuerJwks = z.output<typeof issuerJwksSchema>;

const formParameter = (description: string) => z.string().describe(description).optional();
/** `POST /v1/oauth/token`, form-encoded (RFC 6749 §4.4, RFC 7523): for the document; oauth.ts parses it. */
export const tokenRequestSchema = z.object({
  grant_type: z.enum(['client_credentials', 'urn:ietf:params:oauth:grant-type:jwt-bearer']),
  client_assertion_type: formParameter('`urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (client_credentials)'),
  client_assertion: formParameter('The assertion: a client token with aud the issuer base and a fresh jti (client_credentials)'),
  client_id: formParameter("Optional; the assertion's clientId"),
  assertion: formParameter('The assertion (the jwt-bearer grant)'),
  scope: formParameter("Space-separated, a subset of the client's scopes; absent: all of them but keysmith: scopes"),
  resource: formParameter("The audience of the access token (RFC 8707); absent: the deployment's first audience"),
});

/** A granted token request (RFC 6749 §5.1). */
export const tokenResponseSchema = z.strictObject({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int().min(1),
  scope: z.string(),
});

/** The `error` codes the token endpoint answers with (RFC 6749 §5.2, RFC 8707). */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'invalid_scope',
  'invalid_target',
  'unsupported_grant_type',
  'server_error',
  'temporarily_unavailable',
] as const;
export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number];

/** A refused token request (RFC 6749 §5.2): the token endpoint's errors are these, not problem+json. */
export const oauthErrorSchema = z.strictObject({
  error: z.enum(OAUTH_ERROR_CODES),
  error_description: z.string().regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/),
});
export type OAuthErrorBody = z.output<typeof oauthErrorSchema>;

/** RFC 9457 problem details with Keysmith's stable `code`; `errors` lists each validation issue. */
export const problemSchema = z.strictObject({
  type: z.string().regex(/^urn:keysmith:problem:[a-z0-9_]+$/),
  title: z.string(),
  status: z.number().int().min(400).max(599),
  detail: z.string(),
  code: z.string().regex(/^[a-z0-9_]+$/),
  errors: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
});
export type ProblemBody = z.output<typeof problemSchema>;

/** `GET /v1/openapi.json`: an OpenAPI 3.1 document (its own schema is the OpenAPI specification's, not repeated here). */
export const openApiDocumentSchema = z.looseObject({
  openapi: z.literal('3.1.0'),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.record(z.string(), z.unknown())),
});
