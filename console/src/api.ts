/**
 * The console's view of the API: the SDK's own client ({@link AdminClient}) with tokens signed in this tab, the
 * deployment's settings from the page's meta tags, and the errors as a person reads them.
 */
import { AdminClient } from '#sdk/admin-client.ts';
import { KeysmithApiError, KeysmithConnectionError } from '#sdk/errors.ts';
import { AccessKeyFormatError } from '#shared/formats.ts';
import { ADMIN_SCOPE, PLATFORM_ADMIN_SCOPE } from '#shared/model.ts';
import { BrowserTokenSource, importAccessKey } from './crypto.ts';

/** A well-formed access key that cannot sign in: refused by Keysmith, or not an admin's. Never holds the key. */
export class SignInError extends Error {
  override name = 'SignInError';
}

/** What the page was served with (the discovery function writes these meta tags). */
export interface ConsoleSettings {
  /** The deployment's issuer base (KEYSMITH_ISSUER_BASE): client tokens' `iss` is built on it. */
  issuerBase: string;
  /** The audience of the console's tokens: the deployment's first. */
  audience: string;
  /** The API's base URL: this page's origin and the issuer base's path (an API Gateway stage, say). */
  apiBase: string;
}

export function readSettings(doc: Document = document): ConsoleSettings {
  const meta = (name: string) => doc.querySelector<HTMLMetaElement>(`meta[name="keysmith-${name}"]`)?.content ?? '';
  const issuerBase = meta('issuer-base');
  return { issuerBase, audience: meta('audience'), apiBase: `${location.origin}${meta('api-path')}` };
}

/** A signed-in admin: the API client, and what its key may do. */
export interface Session {
  api: AdminClient;
  clientId: string;
  tenantId: string;
  keyId: string;
  scopes: string[];
  platformAdmin: boolean;
}

/**
 * The scopes the console's tokens may name, most privileged first: the first set the key's client holds is the
 * session's. A token names a subset of its client's scopes or is refused (contract §3), so a refusal here says only
 * "not this set"; the unscoped whoami after them all tells a key Keysmith refuses from a client that is no admin.
 */
const ADMIN_SCOPE_SETS: readonly string[] = [`${PLATFORM_ADMIN_SCOPE} ${ADMIN_SCOPE}`, ADMIN_SCOPE, PLATFORM_ADMIN_SCOPE];

/** Imports the key, asks the API who it is, and refuses a key that is not an admin's. Errors are for people. */
export async function signIn(accessKey: string, settings: ConsoleSettings): Promise<Session> {
  const key = await importAccessKey(accessKey);
  const client = (scope?: string) =>
    new AdminClient(
      // A page served over plain http has already crossed the network in clear; refusing here would protect nothing.
      { baseUrl: settings.apiBase, allowInsecureHttp: true, timeoutMs: 15_000 },
      new BrowserTokenSource(key, settings.issuerBase, settings.audience, scope),
    );
  const refused = (error: unknown) => error instanceof KeysmithApiError && error.status === 401;
  for (const scope of ADMIN_SCOPE_SETS) {
    const api = client(scope);
    try {
      const who = await api.whoami();
      const scopes = who.scopes.split(' ').filter((s) => s.length > 0);
      const platformAdmin = scopes.includes(PLATFORM_ADMIN_SCOPE);
      return { api, clientId: who.clientId, tenantId: who.tenantId, keyId: who.keyId, scopes, platformAdmin };
    } catch (error) {
      if (!refused(error)) throw error;
    }
  }
  // No admin scope set was granted: either Keysmith refuses the key, or its client is no admin. Ask once unscoped
  // (and without a jti, so no token endpoint takes it as an assertion), only to say which.
  let who: Awaited<ReturnType<AdminClient['whoami']>>;
  try {
    who = await client().whoami();
  } catch (error) {
    if (refused(error))
      throw new SignInError(
        'Keysmith refused this access key: it is unknown, revoked or expired, its client is disabled, or this computer’s clock is more than a minute off.',
      );
    throw error;
  }
  const scopes = who.scopes.split(' ');
  // Granted now but refused a moment ago: a key the authorizer had not seen yet (it rereads a client's keys within
  // a second). Not a reason to call the key no admin's.
  if (scopes.includes(ADMIN_SCOPE) || scopes.includes(PLATFORM_ADMIN_SCOPE))
    throw new SignInError('Keysmith is still taking in this new key. Try signing in again in a moment.');
  throw new SignInError(
    `This key’s client is not an admin (its scopes: ${who.scopes || 'none'}). Sign in with the key of a client holding ${ADMIN_SCOPE} or ${PLATFORM_ADMIN_SCOPE}.`,
  );
}

/** One line for a person: what failed and its stable code. */
export function describeError(error: unknown): string {
  if (error instanceof KeysmithApiError) return `${error.detail} (${error.code})`;
  if (error instanceof KeysmithConnectionError) return `Keysmith could not be reached: ${error.message}`;
  if (error instanceof SignInError || error instanceof AccessKeyFormatError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * The API's validation errors by form field: `body.scopes.0` belongs to `scopes`. What matches no field of the form
 * is left for the form's own error line.
 */
export function fieldErrors(error: unknown, fields: readonly string[]): { byField: Record<string, string>; rest?: string } {
  if (!(error instanceof KeysmithApiError) || error.errors.length === 0) return { byField: {}, rest: describeError(error) };
  const byField: Record<string, string> = {};
  const rest: string[] = [];
  for (const { path, message } of error.errors) {
    const [where, field] = path.split('.');
    if (where === 'body' && field !== undefined && fields.includes(field)) byField[field] ??= message;
    else rest.push(`${path}: ${message}`);
  }
  return { byField, ...(rest.length > 0 ? { rest: rest.join('; ') } : {}) };
}
