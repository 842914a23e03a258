/**
 * Builds Keysmith's parts from the configuration, in one place. Handlers call these at module scope, so a
 * warm Lambda reuses its AWS clients, data-key cache and authorizer caches across invocations.
 */
import { readFileSync } from 'node:fs';
import { KMS } from '@aws-sdk/client-kms';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { AuditLog, createAuditCipher, kmsKeyring, localKeyring } from './audit.ts';
import { Authorizer } from './authorizer.ts';
import { ConfigError, type KeysmithConfig, requireAuditKey } from './config.ts';
import { createDocumentClient } from './dynamodb.ts';
import { KeysmithService } from './service.ts';
import { ClientStore } from './store.ts';

/** Reads the local AES wrapping key (32 bytes, base64 in the file). */
export function readWrappingKey(file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError(`KEYSMITH_LOCAL_WRAPPING_KEY_FILE: cannot read ${file}`);
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new ConfigError(`KEYSMITH_LOCAL_WRAPPING_KEY_FILE: ${file} must hold 32 bytes in base64`);
  return key;
}

export function createStore(
  config: KeysmithConfig,
  documentClient: DynamoDBDocumentClient = createDocumentClient(),
): ClientStore {
  return new ClientStore({ documentClient, tableName: config.tables.main });
}

/** The audit log on the configured key: KMS in AWS, the local wrapping key on a laptop. */
export function createAuditLog(
  config: KeysmithConfig,
  documentClient: DynamoDBDocumentClient = createDocumentClient(),
  kms: KMS = new KMS({}),
): AuditLog {
  const auditKey = requireAuditKey(config);
  const keyring =
    auditKey.kind === 'kms' ? kmsKeyring(auditKey.keyArn, kms) : localKeyring(readWrappingKey(auditKey.wrappingKeyFile));
  return new AuditLog({
    documentClient,
    tableName: config.tables.audit,
    cipher: createAuditCipher({ keyring }),
    ...(config.auditRetentionDays ? { retentionDays: config.auditRetentionDays } : {}),
  });
}

/** The management function's parts (also the CLI's `bootstrap`, with the operator's clients). */
export function createManagement(
  config: KeysmithConfig,
  documentClient: DynamoDBDocumentClient = createDocumentClient(),
  kms: KMS = new KMS({}),
) {
  const store = createStore(config, documentClient);
  const audit = createAuditLog(config, documentClient, kms);
  return { store, audit, service: new KeysmithService({ documentClient, store, audit }) };
}

/** The authorizer on the configured table and token rules. */
export function createAuthorizer(
  config: KeysmithConfig,
  documentClient: DynamoDBDocumentClient = createDocumentClient(),
): Authorizer {
  return new Authorizer({
    directory: createStore(config, documentClient),
    policy: config,
    revocationSeconds: config.revocationSeconds,
  });
}
