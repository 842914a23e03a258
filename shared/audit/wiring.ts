/**
 * Builds the audit function's parts and `audit verify`'s checker from the configuration. Apart from ../wiring.ts so
 * that only the functions that need them load the S3 and EventBridge clients.
 */
import { readFileSync } from 'node:fs';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { TokenSigner } from '../access-token.ts';
import { ConfigError, type KeysmithConfig, requireTable } from '../config.ts';
import { createDocumentClient } from '../dynamodb.ts';
import { KmsTokenSigner, LocalTokenSigner } from '../token-signers.ts';
import { createAuditRecordCipher, logTamper, type WiringOptions } from '../wiring.ts';
import { type AnchorQueue, DirectoryAnchorQueue, SqsAnchorQueue } from './anchor-queue.ts';
import { AuditLinker } from './chain.ts';
import { AuditAnchor, type DigestKeys, type DigestStore, LocalDigestStore, S3DigestStore } from './digests.ts';
import { EventBridgeSink, type EventSink, FileEventSink } from './events.ts';
import type { AuditCipher } from './log.ts';
import { AuditVerifier } from './verify.ts';

/** Where change events go (contract §12); fails at cold start when neither the bus nor the file is configured. */
export function createEventSink(config: KeysmithConfig, eventBridge?: EventBridgeClient): EventSink {
  const target = config.changeEvents;
  if (!target) throw new ConfigError('KEYSMITH_EVENT_BUS_NAME (in AWS) or KEYSMITH_LOCAL_EVENTS_FILE (locally) is required');
  return target.kind === 'eventbridge'
    ? new EventBridgeSink(eventBridge ?? new EventBridgeClient({}), target.busName)
    : new FileEventSink(target.file);
}

/** Where tenants to anchor are marked (contract-silent, review finding F2): SQS in AWS, a folder locally. */
export function createAnchorQueue(config: KeysmithConfig, sqs?: SQSClient): AnchorQueue {
  const target = config.auditAnchorQueue;
  if (!target)
    throw new ConfigError('KEYSMITH_AUDIT_ANCHOR_QUEUE_URL (in AWS) or KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR (locally) is required');
  return target.kind === 'sqs'
    ? new SqsAnchorQueue(sqs ?? new SQSClient({}), target.queueUrl)
    : new DirectoryAnchorQueue(target.directory);
}

/** Reads a PEM file named by a variable, with the variable in the error. */
function readPem(file: string, variable: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError(`${variable}: cannot read ${file}`);
  }
}

/** The digests' store and signer (the KMS key and bucket in AWS; the local key file and folder on a laptop). */
export function createDigestParts(
  config: KeysmithConfig,
  options: WiringOptions & { s3?: S3Client } = {},
): { store: DigestStore; signer: TokenSigner } {
  const digests = config.auditDigests;
  if (!digests)
    throw new ConfigError(
      'KEYSMITH_AUDIT_DIGEST_KEY_ARN and KEYSMITH_AUDIT_DIGEST_BUCKET (in AWS), or KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE and KEYSMITH_LOCAL_AUDIT_DIGEST_DIR (locally), are required',
    );
  if (digests.kind === 'aws')
    return {
      store: new S3DigestStore(options.s3 ?? new S3Client({}), digests.bucket),
      signer: new KmsTokenSigner(options.kmsClient ?? new KMSClient({}), digests.keyArn),
    };
  return {
    store: new LocalDigestStore(digests.directory),
    signer: LocalTokenSigner.fromPem(readPem(digests.keyFile, 'KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE')),
  };
}

/** The audit function's parts: the linker (records into chains, events out) and the anchor (digests). */
export function createAuditPipeline(
  config: KeysmithConfig,
  options: WiringOptions & { s3?: S3Client; eventBridge?: EventBridgeClient; anchorQueue?: AnchorQueue } = {},
): { linker: AuditLinker; anchor: AuditAnchor } {
  const documentClient = options.documentClient ?? createDocumentClient();
  const tableName = requireTable(config, 'audit');
  const cipher = createAuditRecordCipher(config, options);
  const onTamper = options.onTamper ?? logTamper;
  const { store, signer } = createDigestParts(config, options);
  const queue = options.anchorQueue ?? createAnchorQueue(config);
  const anchor = new AuditAnchor({ documentClient, tableName, cipher, signer, store, onTamper, queue });
  return {
    linker: new AuditLinker({
      documentClient,
      tableName,
      cipher,
      events: createEventSink(config, options.eventBridge),
      onTamper,
      anchorQueue: queue,
      anchorInline: { anchor: (tenantId) => anchor.anchor(tenantId), seconds: config.auditAnchorSeconds },
    }),
    anchor,
  };
}

/**
 * `audit verify`'s checker: with the audit key it opens content too; with digests it checks the chain against them
 * using only the digest key's public half.
 */
export function createAuditVerifier(
  config: KeysmithConfig,
  options: WiringOptions & { cipher?: AuditCipher; digests?: { store: DigestStore; keys: DigestKeys } } = {},
): AuditVerifier {
  return new AuditVerifier({
    documentClient: options.documentClient ?? createDocumentClient(),
    tableName: requireTable(config, 'audit'),
    ...(options.cipher ? { cipher: options.cipher } : {}),
    ...(options.digests ? { digests: options.digests } : {}),
    ...(config.auditRetentionDays ? { retentionDays: config.auditRetentionDays } : {}),
    linkBoundSeconds: config.auditLinkBoundSeconds,
    anchorSeconds: config.auditAnchorSeconds,
  });
}
