import { TENANT_ID } from './ids.ts';

/** Bounds of `KEYSMITH_ACCESS_TOKEN_SECONDS`, the access-token lifetime (contract §9). */
export const ACCESS_TOKEN_LIFETIME = { default: 300, min: 60, max: 3600 } as const;

/** Bounds of `KEYSMITH_LAST_USED_SECONDS`, how accurate `lastUsedAt` is (contract §11). */
export const LAST_USED_WINDOW = { default: 300, min: 1, max: 86_400 } as const;

/**
 * Keysmith's configuration, read from the environment once, into one typed object.
 * A missing or malformed variable fails at cold start with a message naming it, never deep inside a request.
 */

/** Everything a Keysmith function or the local server needs to know about its deployment. */
export interface KeysmithConfig {
  /** The deployment's public base URL, without a trailing slash; issuers are `{issuerBase}/v1/clients/{clientId}`. */
  issuerBase: string;
  /** Audiences a client token may name. */
  audiences: string[];
  /** Longest allowed `exp - iat` of a client token, in seconds. */
  maxTokenLifetimeSeconds: number;
  /** Upper bound, in seconds, on how long a revoked key or disabled client keeps authorizing on a warm authorizer. */
  revocationSeconds: number;
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. */
  clockSkewSeconds: number;
  /** DynamoDB table names by role. */
  tables: TableNames;
  /**
   * How audit records are encrypted: under a KMS key in AWS, under a local AES wrapping key on a laptop.
   * Only the functions that write or read audit records need it (see {@link requireAuditKey}).
   */
  auditKey: AuditKeyConfig | undefined;
  /**
   * What seals service clients and keys (contract §14): a KMS HMAC key in AWS, a local key file on a laptop.
   * Every function that reads or writes the main table needs it (see {@link requireSealKey}).
   */
  sealKey: SealKeyConfig | undefined;
  /** Days after which audit records expire through DynamoDB TTL; undefined keeps them forever. */
  auditRetentionDays: number | undefined;
  /**
   * Where the audit chain's signed digests go and what signs them: an S3 bucket and a KMS RSA key in AWS, a folder
   * and an RSA key file on a laptop. Only the audit function (and `audit verify`) needs it.
   */
  auditDigests: AuditDigestConfig | undefined;
  /** Where change events go (contract §12): an EventBridge bus in AWS, a JSON Lines file on a laptop. */
  changeEvents: ChangeEventConfig | undefined;
  /**
   * Where the linker marks the tenants to anchor, outside the audit table: an SQS queue in AWS, a folder on a laptop.
   * Only the audit function (and `keysmith audit anchor`) needs it.
   */
  auditAnchorQueue: AnchorQueueConfig | undefined;
  /** How often digests are written, in seconds (the schedule; verify's notion of "anchored late"). */
  auditAnchorSeconds: number;
  /** How long a committed record may stay unlinked before `audit verify` reports it, in seconds. */
  auditLinkBoundSeconds: number;
  /**
   * The keys of Keysmith's access tokens (contract §9): the one that signs and the others the JWKS publishes (the
   * next one before it signs, the retiring one until its last token expires). Undefined: no access tokens.
   */
  tokenSigning: TokenSigningConfig | undefined;
  /** Lifetime of an access token, in seconds (60–3600): also their revocation bound. */
  accessTokenSeconds: number;
  /** `lastUsedAt` is accurate to this many seconds (1–86400): a warm function writes a key's use once per window. */
  lastUsedSeconds: number;
}

export type TokenSigningConfig =
  | { kind: 'kms'; keyArn: string; publishedKeyArns: string[] }
  | { kind: 'local'; keyFile: string; publishedKeyFiles: string[] };

/**
 * The table of each role. Off Lambda each has a default (`keysmith-main`, `keysmith-audit`); on Lambda there is none,
 * so a role the stack did not configure is `''` and the function that uses it fails at cold start ({@link requireTable}).
 */
export interface TableNames {
  /** Service clients and their access keys. */
  main: string;
  /** Audit records and each tenant's chain head. */
  audit: string;
  /** When each key was last used (contract §11): nothing in it grants access. */
  usage: string;
}

export type AuditKeyConfig = { kind: 'kms'; keyArn: string } | { kind: 'local'; wrappingKeyFile: string };

export type SealKeyConfig = { kind: 'kms'; keyArn: string } | { kind: 'local'; keyFile: string };

export type AuditDigestConfig =
  | { kind: 'aws'; keyArn: string; bucket: string }
  | { kind: 'local'; keyFile: string; directory: string };

export type ChangeEventConfig = { kind: 'eventbridge'; busName: string } | { kind: 'file'; file: string };

export type AnchorQueueConfig = { kind: 'sqs'; queueUrl: string } | { kind: 'directory'; directory: string };

type Env = Record<string, string | undefined>;

const DEFAULTS = {
  port: 3000,
  maxTokenLifetimeSeconds: 86_400,
  revocationSeconds: 60,
  clockSkewSeconds: 60,
  tables: { main: 'keysmith-main', audit: 'keysmith-audit', usage: 'keysmith-usage' },
  auditAnchorSeconds: 300,
  auditLinkBoundSeconds: 60,
} as const;

/** Thrown at start-up when the environment is incomplete or malformed. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function positiveInteger(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new ConfigError(`${name} must be a positive whole number of seconds, got "${raw}"`);
  return Number(raw);
}

function baseUrl(name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`${name} must be an http(s) URL`);
  if (url.search || url.hash) throw new ConfigError(`${name} must not have a query or fragment`);
  return raw.replace(/\/+$/, '');
}

/** The local server's port: `PORT`, default 3000. */
export function localPort(env: Env = process.env): number {
  return positiveInteger(env, 'PORT', DEFAULTS.port);
}

/** What only `npm start` reads. */
export interface LocalConfig {
  port: number;
  /** The address the local server listens on. @default 127.0.0.1 (loopback only) */
  host: string;
  /** Where DynamoDB Local keeps its data; undefined: in memory. */
  dataDir: string | undefined;
  /** The tenant of the bootstrapped platform admin. @default platform */
  adminTenant: string;
}

/** Reads `npm start`'s own settings: PORT, KEYSMITH_HOST, KEYSMITH_DATA_DIR, KEYSMITH_ADMIN_TENANT. */
export function loadLocalConfig(env: Env = process.env): LocalConfig {
  const adminTenant = env.KEYSMITH_ADMIN_TENANT || 'platform';
  if (!TENANT_ID.test(adminTenant))
    throw new ConfigError(`KEYSMITH_ADMIN_TENANT must match ^[a-z0-9][a-z0-9_-]{0,62}$, got "${adminTenant}"`);
  const host = env.KEYSMITH_HOST || '127.0.0.1';
  if (!/^[0-9A-Za-z.:-]+$/.test(host)) throw new ConfigError(`KEYSMITH_HOST must be a host name or address, got "${host}"`);
  return { port: localPort(env), host, dataDir: env.KEYSMITH_DATA_DIR || undefined, adminTenant };
}

/**
 * Reads the configuration from the environment.
 * In AWS every variable is set by the CDK stack; locally `npm start` sets them before loading any handler.
 */
export function loadConfig(env: Env = process.env): KeysmithConfig {
  // On Lambda nothing falls back to a laptop's default: a variable the stack forgot fails at cold start.
  const onLambda = Boolean(env.AWS_LAMBDA_FUNCTION_NAME);
  if (onLambda && !env.KEYSMITH_ISSUER_BASE)
    throw new ConfigError('KEYSMITH_ISSUER_BASE is required on Lambda (the stack sets it)');
  const issuerRaw = env.KEYSMITH_ISSUER_BASE || `http://localhost:${localPort(env)}`;
  const issuerBase = baseUrl('KEYSMITH_ISSUER_BASE', issuerRaw);
  const audiences = (env.KEYSMITH_AUDIENCES || issuerBase)
    .split(',')
    .map((audience) => audience.trim())
    .filter((audience) => audience.length > 0);
  if (audiences.length === 0) throw new ConfigError('KEYSMITH_AUDIENCES must name at least one audience');

  const kmsKeyArn = env.KEYSMITH_AUDIT_KMS_KEY_ARN;
  const wrappingKeyFile = env.KEYSMITH_LOCAL_WRAPPING_KEY_FILE;
  let auditKey: AuditKeyConfig | undefined;
  if (kmsKeyArn) auditKey = { kind: 'kms', keyArn: kmsKeyArn };
  else if (wrappingKeyFile) auditKey = { kind: 'local', wrappingKeyFile };

  const sealKeyArn = env.KEYSMITH_SEAL_KMS_KEY_ARN;
  const sealKeyFile = env.KEYSMITH_LOCAL_SEAL_KEY_FILE;
  let sealKey: SealKeyConfig | undefined;
  if (sealKeyArn) sealKey = { kind: 'kms', keyArn: sealKeyArn };
  else if (sealKeyFile) sealKey = { kind: 'local', keyFile: sealKeyFile };

  const list = (raw: string | undefined) =>
    (raw ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
  const signingKeyArn = env.KEYSMITH_TOKEN_SIGNING_KEY_ARN;
  const signingKeyFile = env.KEYSMITH_LOCAL_TOKEN_SIGNING_KEY_FILE;
  let tokenSigning: TokenSigningConfig | undefined;
  if (signingKeyArn)
    tokenSigning = { kind: 'kms', keyArn: signingKeyArn, publishedKeyArns: list(env.KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS) };
  else if (signingKeyFile)
    tokenSigning = {
      kind: 'local',
      keyFile: signingKeyFile,
      publishedKeyFiles: list(env.KEYSMITH_LOCAL_TOKEN_PUBLISHED_KEY_FILES),
    };
  const { default: fallback, min, max } = ACCESS_TOKEN_LIFETIME;
  const accessTokenSeconds = positiveInteger(env, 'KEYSMITH_ACCESS_TOKEN_SECONDS', fallback);
  if (accessTokenSeconds < min || accessTokenSeconds > max)
    throw new ConfigError(`KEYSMITH_ACCESS_TOKEN_SECONDS must be from ${min} to ${max}, got ${accessTokenSeconds}`);

  const window = LAST_USED_WINDOW;
  const lastUsedSeconds = positiveInteger(env, 'KEYSMITH_LAST_USED_SECONDS', window.default);
  if (lastUsedSeconds > window.max)
    throw new ConfigError(`KEYSMITH_LAST_USED_SECONDS must be from ${window.min} to ${window.max}, got ${lastUsedSeconds}`);

  const retention = env.KEYSMITH_AUDIT_RETENTION_DAYS;
  let auditDigests: AuditDigestConfig | undefined;
  if (env.KEYSMITH_AUDIT_DIGEST_KEY_ARN || env.KEYSMITH_AUDIT_DIGEST_BUCKET) {
    if (!env.KEYSMITH_AUDIT_DIGEST_KEY_ARN || !env.KEYSMITH_AUDIT_DIGEST_BUCKET)
      throw new ConfigError('KEYSMITH_AUDIT_DIGEST_KEY_ARN and KEYSMITH_AUDIT_DIGEST_BUCKET go together');
    auditDigests = { kind: 'aws', keyArn: env.KEYSMITH_AUDIT_DIGEST_KEY_ARN, bucket: env.KEYSMITH_AUDIT_DIGEST_BUCKET };
  } else if (env.KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE || env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR) {
    if (!env.KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE || !env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR)
      throw new ConfigError('KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE and KEYSMITH_LOCAL_AUDIT_DIGEST_DIR go together');
    auditDigests = {
      kind: 'local',
      keyFile: env.KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE,
      directory: env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR,
    };
  }
  let changeEvents: ChangeEventConfig | undefined;
  if (env.KEYSMITH_EVENT_BUS_NAME) changeEvents = { kind: 'eventbridge', busName: env.KEYSMITH_EVENT_BUS_NAME };
  else if (env.KEYSMITH_LOCAL_EVENTS_FILE) changeEvents = { kind: 'file', file: env.KEYSMITH_LOCAL_EVENTS_FILE };
  let auditAnchorQueue: AnchorQueueConfig | undefined;
  if (env.KEYSMITH_AUDIT_ANCHOR_QUEUE_URL) auditAnchorQueue = { kind: 'sqs', queueUrl: env.KEYSMITH_AUDIT_ANCHOR_QUEUE_URL };
  else if (env.KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR)
    auditAnchorQueue = { kind: 'directory', directory: env.KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR };
  const auditAnchorSeconds = positiveInteger(env, 'KEYSMITH_AUDIT_ANCHOR_SECONDS', DEFAULTS.auditAnchorSeconds);
  const auditLinkBoundSeconds = positiveInteger(env, 'KEYSMITH_AUDIT_LINK_BOUND_SECONDS', DEFAULTS.auditLinkBoundSeconds);
  return {
    issuerBase,
    audiences,
    maxTokenLifetimeSeconds: positiveInteger(env, 'KEYSMITH_MAX_TOKEN_LIFETIME', DEFAULTS.maxTokenLifetimeSeconds),
    revocationSeconds: positiveInteger(env, 'KEYSMITH_REVOCATION_SECONDS', DEFAULTS.revocationSeconds),
    clockSkewSeconds: DEFAULTS.clockSkewSeconds,
    tables: {
      main: env.KEYSMITH_MAIN_TABLE || (onLambda ? '' : DEFAULTS.tables.main),
      audit: env.KEYSMITH_AUDIT_TABLE || (onLambda ? '' : DEFAULTS.tables.audit),
      usage: env.KEYSMITH_USAGE_TABLE || (onLambda ? '' : DEFAULTS.tables.usage),
    },
    auditKey,
    sealKey,
    auditRetentionDays: retention ? positiveInteger(env, 'KEYSMITH_AUDIT_RETENTION_DAYS', 0) : undefined,
    auditDigests,
    changeEvents,
    auditAnchorQueue,
    auditAnchorSeconds,
    auditLinkBoundSeconds,
    tokenSigning,
    accessTokenSeconds,
    lastUsedSeconds,
  };
}

/** The audit key of a function that writes or reads audit records; fails at cold start when it is not configured. */
export function requireAuditKey(config: KeysmithConfig): AuditKeyConfig {
  if (!config.auditKey)
    throw new ConfigError('KEYSMITH_AUDIT_KMS_KEY_ARN (in AWS) or KEYSMITH_LOCAL_WRAPPING_KEY_FILE (locally) is required');
  return config.auditKey;
}

/** The seal key of a function that reads or writes the main table; fails at cold start when it is not configured. */
export function requireSealKey(config: KeysmithConfig): SealKeyConfig {
  if (!config.sealKey)
    throw new ConfigError('KEYSMITH_SEAL_KMS_KEY_ARN (in AWS) or KEYSMITH_LOCAL_SEAL_KEY_FILE (locally) is required');
  return config.sealKey;
}

/** The variable that names each table, set by the stack. */
export const TABLE_VARIABLES: Record<keyof TableNames, string> = {
  main: 'KEYSMITH_MAIN_TABLE',
  audit: 'KEYSMITH_AUDIT_TABLE',
  usage: 'KEYSMITH_USAGE_TABLE',
};

/** The name of a table a function uses; fails at cold start when it is not configured (on Lambda, no default). */
export function requireTable(config: KeysmithConfig, role: keyof TableNames): string {
  const name = config.tables[role];
  if (!name) throw new ConfigError(`${TABLE_VARIABLES[role]} is required on Lambda (the stack sets it)`);
  return name;
}
