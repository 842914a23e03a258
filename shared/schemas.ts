/** The shapes of every request body, path and query parameter (contract §5), validated with zod. */
import { z } from 'zod';
import { AUDIT_ACTIONS } from './audit.ts';
import { InvalidRequestError } from './errors.ts';
import { CLIENT_ID, KEY_ID, TENANT_ID } from './ids.ts';
import { ALGORITHMS } from './model.ts';

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
export const MAX_SCOPES = 50;
export const MAX_TAGS = 20;

const scopes = z
  .array(z.string().max(256, 'a scope is at most 256 characters').regex(SCOPE_TOKEN, 'not an RFC 6749 scope-token'))
  .max(MAX_SCOPES, `at most ${MAX_SCOPES} scopes`)
  .refine((list) => new Set(list).size === list.length, 'scopes must not repeat');

const tags = z
  .record(
    z.string().min(1).max(64, 'a tag key is at most 64 characters'),
    z.string().max(256, 'a tag value is at most 256 characters'),
  )
  .refine((record) => Object.keys(record).length <= MAX_TAGS, `at most ${MAX_TAGS} tags`);

const name = z.string().trim().min(1, 'name must not be empty').max(128, 'name is at most 128 characters');
const description = z.string().max(1024, 'description is at most 1024 characters');

const futureTime = z.iso
  .datetime({ offset: true, message: 'an ISO 8601 date-time with a time zone, e.g. 2027-01-31T00:00:00Z' })
  .refine((value) => Date.parse(value) > Date.now(), 'must be in the future');

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
  .refine((body) => Object.keys(body).length > 0, 'name at least one field to change');
export type UpdateClientBody = z.infer<typeof updateClientBody>;

export const createKeyBody = z.strictObject({
  algorithm: z.enum(ALGORITHMS).optional(),
  expiresAt: futureTime.optional(),
  publicKey: z.record(z.string(), z.unknown()).optional(),
});
export type CreateKeyBody = z.infer<typeof createKeyBody>;

const limit = z
  .string()
  .regex(/^[0-9]{1,3}$/, 'limit is a whole number from 1 to 100')
  .transform(Number)
  .pipe(z.number().int().min(1, 'limit is at least 1').max(100, 'limit is at most 100'))
  .default(20);
const cursor = z.string().min(1).max(1024);

export const listQuery = z.strictObject({ limit, cursor: cursor.optional() });
export const auditQuery = z.strictObject({
  limit,
  cursor: cursor.optional(),
  from: z.iso.datetime({ offset: true, message: 'from is an ISO 8601 date-time' }).optional(),
  to: z.iso.datetime({ offset: true, message: 'to is an ISO 8601 date-time' }).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
});
export const emptyQuery = z.strictObject({});

export const pathParameters = {
  tenantId: z.string().regex(TENANT_ID, 'tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$'),
  clientId: z.string().regex(CLIENT_ID, 'clientId must look like sc_ followed by 22 letters and digits'),
  keyId: z.string().regex(KEY_ID, 'keyId is 8 to 16 letters and digits'),
} as const;

/**
 * Parses `input` with `schema`, or throws a 400 problem that lists each issue with its path.
 * Issues name where and what, never echo the value (it might be a secret pasted in the wrong place).
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: [where, ...issue.path.map(String)].join('.'),
    message:
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`
        : issue.code === 'invalid_type'
          ? `expected ${issue.expected}`
          : issue.message,
  }));
  const first = issues[0];
  throw new InvalidRequestError(
    first ? `${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}` : `invalid ${where}`,
    'invalid_request',
    { errors: issues },
  );
}
