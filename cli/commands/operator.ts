/**
 * The operator's commands, which talk to DynamoDB (and KMS) directly with the operator's AWS credentials:
 * `keysmith audit verify` and `keysmith bootstrap`. Their AWS code is loaded only when they run.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Command, type OptionSpecs, type OptionValues, stringOption } from '../command.ts';
import { type Context, UsageError } from '../context.ts';

const AWS_OPTIONS: OptionSpecs = {
  region: { type: 'string', value: 'REGION', description: 'AWS region (default: AWS_REGION or your AWS profile)' },
  endpoint: { type: 'string', value: 'URL', description: 'DynamoDB endpoint (e.g. a DynamoDB Local)' },
  'kms-key-arn': { type: 'string', value: 'ARN', description: "the audit trail's KMS key" },
  'wrapping-key-file': {
    type: 'string',
    value: 'FILE',
    description: 'a local AES wrapping key instead of KMS (default locally: .keysmith/audit-wrapping-key)',
  },
  json: { type: 'boolean', description: 'print JSON for scripts' },
};

const SEAL_OPTIONS: OptionSpecs = {
  'seal-key-arn': {
    type: 'string',
    value: 'ARN',
    description: "the KMS HMAC key that seals clients and keys (the stack's SealKeyArn output)",
  },
  'seal-key-file': {
    type: 'string',
    value: 'FILE',
    description: 'a local seal key instead of KMS (default locally: .keysmith/seal-key)',
  },
};

const DIGEST_OPTIONS: OptionSpecs = {
  'digest-bucket': {
    type: 'string',
    value: 'NAME',
    description: "the bucket of the chain's signed digests (the stack's AuditDigestBucket output)",
  },
  'digest-key-arn': {
    type: 'string',
    value: 'ARN',
    description: "the KMS key that signs the digests (the stack's AuditDigestKeyArn output)",
  },
  'digest-dir': {
    type: 'string',
    value: 'DIR',
    description: 'a folder of digests instead of the bucket (default locally: .keysmith/audit-digests)',
  },
};

/** Where the chain's digests are, and the digest key: its KMS ARN, or a PEM file (public, or the local private one). */
export interface DigestTarget {
  store: { kind: 's3'; bucket: string } | { kind: 'dir'; directory: string };
  key: { kind: 'kms'; keyArn: string } | { kind: 'file'; file: string } | undefined;
}

/**
 * Resolves the digest options, then the local stack's defaults beside its wrapping key; undefined when no digests are
 * named or found. `--digest-public-key` (PEM) checks with no KMS permission; `--digest-key-arn` uses
 * kms:GetPublicKey to check, kms:Sign to anchor.
 */
export function digestTarget(options: OptionValues, ctx: Context): DigestTarget | undefined {
  const bucket = stringOption(options, 'digest-bucket');
  const keyArn = stringOption(options, 'digest-key-arn');
  const directory = stringOption(options, 'digest-dir');
  const publicKeyFile = stringOption(options, 'digest-public-key') ?? stringOption(options, 'digest-key-file');
  if (bucket && directory) throw new UsageError('--digest-bucket and --digest-dir exclude each other');
  if (keyArn && publicKeyFile) throw new UsageError('--digest-key-arn excludes a digest key file');
  const local = bucket ? {} : ctx.local();
  const beside = (name: string) => (local.wrappingKeyFile ? join(dirname(local.wrappingKeyFile), name) : undefined);
  const localDir = beside('audit-digests');
  const folder = directory ?? (localDir && existsSync(localDir) ? localDir : undefined);
  const localKey = beside('audit-digest-key');
  const key: DigestTarget['key'] = keyArn
    ? { kind: 'kms', keyArn }
    : publicKeyFile
      ? { kind: 'file', file: publicKeyFile }
      : localKey && existsSync(localKey)
        ? { kind: 'file', file: localKey }
        : undefined;
  if (!bucket && !folder) {
    if (keyArn || publicKeyFile) throw new UsageError('--digest-bucket (or --digest-dir) is required with a digest key');
    return undefined;
  }
  if (!key) throw new UsageError('--digest-key-arn (or --digest-public-key FILE) is required with the digests');
  return { store: bucket ? { kind: 's3', bucket } : { kind: 'dir', directory: folder as string }, key };
}

/** Where the operator's commands find DynamoDB and the audit key. */
export interface AwsTarget {
  region: string | undefined;
  endpoint: string | undefined;
  /** Credentials for DynamoDB Local, which accepts any (used when the endpoint came from local.json). */
  localCredentials: boolean;
  /** Undefined only for an integrity-only check (`audit verify --integrity-only`). */
  auditKey: { kind: 'kms'; keyArn: string } | { kind: 'local'; wrappingKeyFile: string } | undefined;
  /** The key that seals clients and keys (needed to write them: bootstrap). */
  sealKey: { kind: 'kms'; keyArn: string } | { kind: 'local'; keyFile: string } | undefined;
  tables: { main: string | undefined; audit: string | undefined };
}

/** Resolves options, then `.keysmith/local.json` (only when no KMS key is named: then the target is AWS). */
export function awsTarget(options: OptionValues, ctx: Context, needs = { auditKey: true }): AwsTarget {
  const kmsKeyArn = stringOption(options, 'kms-key-arn');
  const wrappingKeyFile = stringOption(options, 'wrapping-key-file');
  if (kmsKeyArn && wrappingKeyFile) throw new UsageError('--kms-key-arn and --wrapping-key-file exclude each other');
  const local = kmsKeyArn ? {} : ctx.local();
  const endpointOption = stringOption(options, 'endpoint');
  const endpoint = endpointOption ?? local.dynamodbEndpoint;
  const localKeyFile = wrappingKeyFile ?? (local.dynamodbEndpoint ? local.wrappingKeyFile : undefined);
  if (!kmsKeyArn && !localKeyFile && needs.auditKey)
    throw new UsageError('--kms-key-arn is required (or, for a local stack, run this where .keysmith/local.json is)');
  const sealKeyArn = stringOption(options, 'seal-key-arn');
  // Locally the seal key sits beside the wrapping key; it is used by default only where it exists.
  const localSealKey = localKeyFile && !sealKeyArn ? join(dirname(localKeyFile), 'seal-key') : undefined;
  const sealKeyFile =
    stringOption(options, 'seal-key-file') ?? (localSealKey && existsSync(localSealKey) ? localSealKey : undefined);
  return {
    region: stringOption(options, 'region') ?? ctx.env.AWS_REGION ?? (local.dynamodbEndpoint ? 'us-east-1' : undefined),
    endpoint,
    localCredentials: endpointOption === undefined && local.dynamodbEndpoint !== undefined,
    auditKey: kmsKeyArn
      ? { kind: 'kms', keyArn: kmsKeyArn }
      : localKeyFile
        ? { kind: 'local', wrappingKeyFile: localKeyFile }
        : undefined,
    sealKey: sealKeyArn ? { kind: 'kms', keyArn: sealKeyArn } : sealKeyFile ? { kind: 'local', keyFile: sealKeyFile } : undefined,
    tables: {
      main: stringOption(options, 'main-table') ?? local.tables?.main,
      audit: stringOption(options, 'audit-table') ?? local.tables?.audit,
    },
  };
}

export const auditVerifyCommand: Command = {
  name: ['audit', 'verify'],
  summary:
    "Walk a tenant's audit hash chain in DynamoDB and report the first record deleted, changed, inserted or reordered (--json also prints the head's seq and digest, to keep a copy elsewhere).",
  options: {
    tenant: { type: 'string', value: 'TENANT', description: 'the tenant whose chain to verify (required)' },
    'audit-table': { type: 'string', value: 'NAME', description: 'the audit table (default locally: from .keysmith/local.json)' },
    'main-table': {
      type: 'string',
      value: 'NAME',
      description: "with the seal key: also check each client's sealed last change against the chain",
    },
    ...SEAL_OPTIONS,
    'retention-days': {
      type: 'string',
      value: 'DAYS',
      description: 'the deployment keeps records this long (older ones expired: the chain may start later)',
    },
    'integrity-only': {
      type: 'boolean',
      description: 'check links, order and digests without decrypting (an auditor without kms:Decrypt)',
    },
    ...DIGEST_OPTIONS,
    'digest-public-key': {
      type: 'string',
      value: 'FILE',
      description: "the digest key's public half (PEM), to check digests with no KMS permission at all",
    },
    'expect-head': {
      type: 'string',
      value: 'SEQ:DIGEST',
      description:
        'a head saved from an earlier --json run (head.seq:head.digest): also fail if the chain was rolled back past it',
    },
    ...AWS_OPTIONS,
  },
  notes:
    'Exit code 0: the chain is intact; 1: it is broken (the first problem is printed).\n' +
    'In AWS: keysmith audit verify --tenant acme --audit-table NAME --kms-key-arn ARN --main-table NAME --seal-key-arn ARN --digest-bucket NAME --digest-key-arn ARN --region eu-west-1\n' +
    'An auditor without kms:Decrypt: keysmith audit verify --tenant acme --audit-table NAME --integrity-only --digest-bucket NAME --digest-public-key digest-key.pem',
  async run(values, positionals, ctx) {
    return (await import('../operator-aws.ts')).auditVerify(values, positionals, ctx);
  },
};

export const auditAnchorCommand: Command = {
  name: ['audit', 'anchor'],
  summary:
    "Write a signed digest of each changed tenant's chain head now (as the audit function's schedule does), or of one tenant's with --tenant.",
  options: {
    tenant: {
      type: 'string',
      value: 'TENANT',
      description: 'anchor this tenant only (default: every tenant changed since its last digest)',
    },
    'audit-table': { type: 'string', value: 'NAME', description: 'the audit table (default locally: from .keysmith/local.json)' },
    ...DIGEST_OPTIONS,
    'digest-key-file': {
      type: 'string',
      value: 'FILE',
      description: 'a local digest signing key (PEM) instead of KMS (default locally: .keysmith/audit-digest-key)',
    },
    'anchor-queue-url': {
      type: 'string',
      value: 'URL',
      description: "the queue of tenants to anchor (the stack's AuditAnchorQueueUrl output; not needed with --tenant)",
    },
    'anchor-dir': {
      type: 'string',
      value: 'DIR',
      description: 'a folder of tenants to anchor instead of the queue (default locally: .keysmith/audit-anchors)',
    },
    ...AWS_OPTIONS,
  },
  notes:
    'Without --tenant it takes the marks the audit function left in the anchor queue, like the schedule (needs sqs:ReceiveMessage and sqs:DeleteMessage).\n' +
    'Needs kms:Decrypt on the audit key (to check the head) and kms:Sign on the digest key. In AWS the audit function does this every 5 minutes; to run it now there:\n' +
    '  aws lambda invoke --function-name FUNCTION --payload \'{"keysmith":"anchor","tenantId":"acme"}\' --cli-binary-format raw-in-base64-out out.json',
  async run(values, positionals, ctx) {
    return (await import('../operator-aws.ts')).auditAnchor(values, positionals, ctx);
  },
};

export const bootstrapCommand: Command = {
  name: ['bootstrap'],
  summary: 'Create the first platform admin of a deployment with your AWS credentials, and print its access key once.',
  options: {
    'main-table': {
      type: 'string',
      value: 'NAME',
      description: 'the main table (required in AWS; locally from .keysmith/local.json)',
    },
    'audit-table': {
      type: 'string',
      value: 'NAME',
      description: 'the audit table (required in AWS; locally from .keysmith/local.json)',
    },
    tenant: { type: 'string', value: 'TENANT', description: "the admin's tenant (default: platform)" },
    name: { type: 'string', value: 'NAME', description: "the admin client's name (default: platform-admin)" },
    force: { type: 'boolean', description: 'create another platform admin even if the tenant has one' },
    ...SEAL_OPTIONS,
    ...AWS_OPTIONS,
  },
  notes:
    'The table names and key ARN are outputs of the CDK stack. Example:\n  keysmith bootstrap --main-table NAME --audit-table NAME --kms-key-arn ARN --seal-key-arn ARN --region eu-west-1 > admin.key',
  async run(values, positionals, ctx) {
    return (await import('../operator-aws.ts')).bootstrap(values, positionals, ctx);
  },
};
