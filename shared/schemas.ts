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
  .refine((body) => Object.keys(body).length > 0, 'name at least one field to change');
export type UpdateClientBody = z.infer<typeof updateClientBody>;

export const createKeyBody = z.strictObject({
  algorithm: z.enum(ALGORITHMS).optional(),
  expiresAt: futureTime('expiresAt').optional(),
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
  from: instant('from').optional(),
  to: instant('to').optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
});
export const emptyQuery = z.strictObject({});

export const pathParameters = {
  tenantId: z.string().regex(TENANT_ID, 'tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$'),
  clientId: z.string().regex(CLIENT_ID, 'clientId must look like sc_ followed by 22 letters and digits'),
  keyId: z.string().regex(KEY_ID, 'keyId is 8 to 16 letters and digits'),
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
