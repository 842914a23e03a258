/**
 * Finding which deployment and key the API commands use (options, then environment, then `.keysmith/local.json`),
 * and the SDK's {@link KeysmithAdmin} that calls that deployment's HTTP API (contract §5) with them.
 */
import { isLoopbackHost, KeysmithAdmin } from '#sdk/admin.ts';
import { type OptionSpecs, type OptionValues, stringOption } from './command.ts';
import { type Context, readUserFile, UsageError } from './context.ts';

/** Options of every command that calls the API. */
export const CONNECTION_OPTIONS: OptionSpecs = {
  'base-url': {
    type: 'string',
    value: 'URL',
    description: "the deployment's API URL (default: KEYSMITH_BASE_URL, else .keysmith/local.json)",
  },
  'access-key': {
    type: 'string',
    value: 'KEY',
    description: 'an admin access key (default: KEYSMITH_ADMIN_ACCESS_KEY, else .keysmith/local.json)',
  },
  'access-key-file': { type: 'string', value: 'FILE', description: 'read the access key from FILE' },
  'issuer-base': {
    type: 'string',
    value: 'URL',
    description: "the deployment's issuer base (default: KEYSMITH_ISSUER_BASE, else local.json, else the base URL)",
  },
  audience: {
    type: 'string',
    value: 'AUD',
    description: "the token audience (default: KEYSMITH_AUDIENCE, else local.json's first, else the issuer base)",
  },
  json: { type: 'boolean', description: 'print JSON for scripts' },
};

/** The `--tenant` option of the management commands. */
export const TENANT_OPTION: OptionSpecs = {
  tenant: {
    type: 'string',
    value: 'TENANT',
    description: "the tenant (default: KEYSMITH_TENANT, else the access key's own tenant)",
  },
};

const trimBase = (url: string) => url.replace(/\/+$/, '');

function checkUrl(option: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${option} must be an absolute http(s) URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new UsageError(`${option} must be an http(s) URL`);
  if (parsed.search || parsed.hash) throw new UsageError(`${option} must not have a query or fragment`);
  // Credentials in the URL would be echoed by every error that names it.
  if (parsed.username || parsed.password) throw new UsageError(`${option} must not hold a user name or password`);
  return trimBase(url);
}

/**
 * The API client for a command's options. `keyEnv` names the environment variables tried for the access key,
 * in order, before `.keysmith/local.json`'s admin key. A malformed key fails here (an AccessKeyFormatError).
 */
export function connect(values: OptionValues, ctx: Context, keyEnv: string[] = ['KEYSMITH_ADMIN_ACCESS_KEY']): KeysmithAdmin {
  const saved = ctx.local();
  const baseUrlRaw = stringOption(values, 'base-url') ?? ctx.env.KEYSMITH_BASE_URL ?? saved.baseUrl;
  if (!baseUrlRaw)
    throw new UsageError('--base-url is required (or KEYSMITH_BASE_URL; locally `npm start` writes .keysmith/local.json)');
  const baseUrl = checkUrl('--base-url', baseUrlRaw);
  // Every call carries an admin's token: plain http only where it cannot cross a network, unless asked for.
  const allowInsecureHttp = ctx.env.KEYSMITH_ALLOW_INSECURE_HTTP === '1';
  const { protocol, hostname } = new URL(baseUrl);
  if (protocol === 'http:' && !isLoopbackHost(hostname) && !allowInsecureHttp)
    throw new UsageError(
      '--base-url is plain http on a host other than loopback: use https, or set KEYSMITH_ALLOW_INSECURE_HTTP=1 if the network between is yours',
    );
  // local.json's key, issuer and audience belong to the local stack: never send them anywhere else.
  const local = saved.baseUrl && trimBase(saved.baseUrl) === baseUrl ? saved : {};
  const keyFile = stringOption(values, 'access-key-file');
  const accessKey = keyFile
    ? readUserFile(keyFile, '--access-key-file').trim()
    : (stringOption(values, 'access-key') ?? keyEnv.map((name) => ctx.env[name]).find((v) => v) ?? local.adminAccessKey);
  if (!accessKey) throw new UsageError(`an access key is required: --access-key, --access-key-file or ${keyEnv.join(' or ')}`);
  const issuerBase = checkUrl(
    '--issuer-base',
    stringOption(values, 'issuer-base') ?? ctx.env.KEYSMITH_ISSUER_BASE ?? local.issuerBase ?? baseUrl,
  );
  const localAudience = local.issuerBase && trimBase(local.issuerBase) === issuerBase ? local.audiences?.[0] : undefined;
  const audience = stringOption(values, 'audience') ?? ctx.env.KEYSMITH_AUDIENCE ?? localAudience ?? issuerBase;
  return new KeysmithAdmin({ baseUrl, accessKey, issuerBase, audience, fetch: ctx.fetch, allowInsecureHttp });
}

/** The tenant a management command acts on: --tenant, else KEYSMITH_TENANT, else the access key's own tenant. */
export function tenantOf(values: OptionValues, ctx: Context, admin: KeysmithAdmin): string {
  return stringOption(values, 'tenant') ?? ctx.env.KEYSMITH_TENANT ?? admin.identity.tenantId;
}
