/**
 * Builds Keysmith's parts from the configuration, in one place. Handlers call these at module scope, so a
 * warm Lambda reuses its AWS clients, data-key cache, verified seals and authorizer caches across invocations.
 * The local stand-ins for KMS (the audit wrapping key, the seal key, the token-signing key) are chosen here.
 */
import { readFileSync } from 'node:fs';
import { KMS, KMSClient } from '@aws-sdk/client-kms';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { IssuerKey, TokenSigner } from './access-token.ts';
import { type AuditCipher, AuditLog, createAuditCipher, kmsKeyring, localKeyring } from './audit/log.ts';
import { Authorizer } from './authorizer.ts';
import { ConfigError, type KeysmithConfig, requireAuditKey, requireSealKey, requireTable } from './config.ts';
import { createDocumentClient } from './dynamodb.ts';
import { logger } from './logger.ts';
import { DynamoJtiStore, TokenIssuer } from './oauth.ts';
import { KmsSealKey, LocalSealKey, type SealKey } from './seal.ts';
import { KeysmithService } from './service.ts';
import { ClientStore, type TamperListener } from './store.ts';
import { KmsTokenSigner, LocalTokenSigner } from './token-signers.ts';
import { type UsageFailureListener, UsageReader, UsageRecorder } from './usage.ts';

/** Reads a local 32-byte key (base64 in the file) named by the variable `variable`. */
export function readLocalKey(file: string, variable = 'KEYSMITH_LOCAL_WRAPPING_KEY_FILE'): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError(`${variable}: cannot read ${file}`);
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new ConfigError(`${variable}: ${file} must hold 32 bytes in base64`);
  return key;
}

/** How the parts report what they refuse; handlers pass one that also counts it as a metric. */
export interface WiringOptions {
  documentClient?: DynamoDBDocumentClient;
  /** The aggregated KMS client the Encryption SDK wants (audit). @default new KMS({}) */
  kms?: KMS;
  /** The bare KMS client the seals use. @default new KMSClient({}) */
  kmsClient?: KMSClient;
  /** Told about every item refused by its seal or integrity check. @default a warning in the log */
  onTamper?: TamperListener;
}

/** Logs a refused item with its reason (never its content). */
export const logTamper: TamperListener = (report) => logger.warn('integrity check failed; item treated as absent', { ...report });

/** The seal key on the configured key: KMS in AWS, the local key file on a laptop. */
export function createSealKey(config: KeysmithConfig, kmsClient: KMSClient = new KMSClient({})): SealKey {
  const sealKey = requireSealKey(config);
  return sealKey.kind === 'kms'
    ? new KmsSealKey({ kms: kmsClient, keyId: sealKey.keyArn })
    : new LocalSealKey(readLocalKey(sealKey.keyFile, 'KEYSMITH_LOCAL_SEAL_KEY_FILE'));
}

/** The token signer and the other published keys (contract §9), or undefined when access tokens are not configured. */
export function createTokenSigners(
  config: KeysmithConfig,
  kmsClient: KMSClient = new KMSClient({}),
): { signer: TokenSigner; published: TokenSigner[] } | undefined {
  const signing = config.tokenSigning;
  if (!signing) return undefined;
  if (signing.kind === 'kms')
    return {
      signer: new KmsTokenSigner(kmsClient, signing.keyArn),
      published: signing.publishedKeyArns.map((arn) => new KmsTokenSigner(kmsClient, arn)),
    };
  const local = (file: string, variable: string) => {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch {
      throw new ConfigError(`${variable}: cannot read ${file}`);
    }
    try {
      return LocalTokenSigner.fromPem(pem);
    } catch (error) {
      throw new ConfigError(
        `${variable}: ${file} must hold an RSA private key of 2048 bits or more in PKCS#8 PEM (${(error as Error).message})`,
      );
    }
  };
  return {
    signer: local(signing.keyFile, 'KEYSMITH_LOCAL_TOKEN_SIGNING_KEY_FILE'),
    published: signing.publishedKeyFiles.map((file) => local(file, 'KEYSMITH_LOCAL_TOKEN_PUBLISHED_KEY_FILES')),
  };
}

/** Every published token-signing public key: the signer's first (each signer fetches its own once). */
export const issuerKeysOf = (signers: { signer: TokenSigner; published: TokenSigner[] }) => (): Promise<IssuerKey[]> =>
  Promise.all([signers.signer, ...signers.published].map((signer) => signer.key()));

/** The token signers a function that issues or publishes access tokens needs; fails at cold start without them. */
export function requireTokenSigners(config: KeysmithConfig, kmsClient?: KMSClient) {
  const signers = createTokenSigners(config, kmsClient);
  if (!signers)
    throw new ConfigError(
      'KEYSMITH_TOKEN_SIGNING_KEY_ARN (in AWS) or KEYSMITH_LOCAL_TOKEN_SIGNING_KEY_FILE (locally) is required',
    );
  return signers;
}

/**
 * The token endpoint's parts (contract §9): strongly consistent sealed reads, the jti records, the signer, and the
 * recorder of key uses (contract §11).
 */
export function createTokenIssuer(
  config: KeysmithConfig,
  options: WiringOptions & { usage?: UsageRecorder; onUsageFailure?: UsageFailureListener } = {},
): TokenIssuer {
  const documentClient = options.documentClient ?? createDocumentClient();
  const usage = options.usage ?? createUsageRecorder(config, { ...options, documentClient });
  return new TokenIssuer({
    onKeyUsed: (clientId, keyId) => usage.record(clientId, keyId),
    store: createStore(config, { ...options, documentClient }),
    jti: new DynamoJtiStore(documentClient, requireTable(config, 'main')),
    signer: requireTokenSigners(config, options.kmsClient).signer,
    issuerBase: config.issuerBase,
    audiences: config.audiences,
    accessTokenSeconds: config.accessTokenSeconds,
    clockSkewSeconds: config.clockSkewSeconds,
  });
}

export function createStore(config: KeysmithConfig, options: WiringOptions = {}): ClientStore {
  return new ClientStore({
    documentClient: options.documentClient ?? createDocumentClient(),
    tableName: requireTable(config, 'main'),
    sealKey: createSealKey(config, options.kmsClient),
    onTamper: options.onTamper ?? logTamper,
  });
}

/** The audit records' cipher on the configured key: KMS in AWS, the local wrapping key on a laptop. */
export function createAuditRecordCipher(config: KeysmithConfig, options: WiringOptions = {}): AuditCipher {
  const auditKey = requireAuditKey(config);
  const keyring =
    auditKey.kind === 'kms'
      ? kmsKeyring(auditKey.keyArn, options.kms ?? new KMS({}))
      : localKeyring(readLocalKey(auditKey.wrappingKeyFile));
  return createAuditCipher({ keyring });
}

/** The audit log on the configured key. */
export function createAuditLog(config: KeysmithConfig, options: WiringOptions = {}): AuditLog {
  return new AuditLog({
    documentClient: options.documentClient ?? createDocumentClient(),
    tableName: requireTable(config, 'audit'),
    cipher: createAuditRecordCipher(config, options),
    ...(config.auditRetentionDays ? { retentionDays: config.auditRetentionDays } : {}),
  });
}

/**
 * The management function's parts (also the CLI's `bootstrap`, with the operator's clients, which has no usage table:
 * `usage` is then undefined).
 */
export function createManagement(config: KeysmithConfig, options: WiringOptions = {}) {
  const documentClient = options.documentClient ?? createDocumentClient();
  const store = createStore(config, { ...options, documentClient });
  const audit = createAuditLog(config, { ...options, documentClient });
  const usage = config.tables.usage ? new UsageReader(documentClient, config.tables.usage) : undefined;
  return { store, audit, usage, service: new KeysmithService({ documentClient, store, audit, ...(usage ? { usage } : {}) }) };
}

/** What a failed usage write is logged as (a warning: the authorization it followed went ahead). */
export const logUsageFailure: UsageFailureListener = (failure) =>
  logger.warn('last-used write failed; the authorization went ahead', { ...failure });

/**
 * The recorder of key uses (contract §11) of the authorizer and the token endpoint, on the usage table: the only table
 * either may write to that clients read.
 */
export function createUsageRecorder(
  config: KeysmithConfig,
  options: WiringOptions & { onUsageFailure?: UsageFailureListener } = {},
): UsageRecorder {
  return new UsageRecorder({
    documentClient: options.documentClient ?? createDocumentClient(),
    tableName: requireTable(config, 'usage'),
    windowSeconds: config.lastUsedSeconds,
    onFailure: options.onUsageFailure ?? logUsageFailure,
  });
}

/**
 * The authorizer on the configured table and token rules, recording key uses in the usage table (or with `usage`,
 * e.g. a recorder a test or the benchmark counts).
 */
export function createAuthorizer(
  config: KeysmithConfig,
  options: WiringOptions & { usage?: UsageRecorder; onUsageFailure?: UsageFailureListener } = {},
): Authorizer {
  const signers = createTokenSigners(config, options.kmsClient);
  const usage = options.usage ?? createUsageRecorder(config, options);
  return new Authorizer({
    directory: createStore(config, options),
    onKeyUsed: (clientId, keyId) => usage.record(clientId, keyId),
    policy: config,
    revocationSeconds: config.revocationSeconds,
    ...(signers ? { issuerKeys: issuerKeysOf(signers), maxAccessTokenSeconds: config.accessTokenSeconds } : {}),
  });
}
