/**
 * The AWS side of `keysmith audit verify` and `keysmith bootstrap`: DynamoDB and KMS clients built from the
 * operator's credentials, and the shared wiring. Imported only by those commands (the AWS SDK loads slowly).
 */

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { KMS, KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type AnchorQueue, DirectoryAnchorQueue, SqsAnchorQueue } from '#shared/audit/anchor-queue.ts';
import { AuditAnchor, digestKeyFromPem, LocalDigestStore, S3DigestStore } from '#shared/audit/digests.ts';
import { createAuditVerifier } from '#shared/audit/wiring.ts';
import { bootstrapPlatformAdmin, DEFAULT_ADMIN_TENANT } from '#shared/bootstrap.ts';
import { ConfigError, type KeysmithConfig, loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { TENANT_ID } from '#shared/ids.ts';
import { PLATFORM_ADMIN_SCOPE } from '#shared/model.ts';
import { KmsTokenSigner, LocalTokenSigner } from '#shared/token-signers.ts';
import { createAuditRecordCipher, createManagement, createStore } from '#shared/wiring.ts';
import { integerOption, type OptionValues, stringOption } from './command.ts';
import { awsTarget, type DigestTarget, digestTarget } from './commands/operator.ts';
import { CliError, type Context, printJson, terminalSafe, UsageError } from './context.ts';

const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

function tenantOption(values: OptionValues, fallback?: string): string {
  const tenant = stringOption(values, 'tenant') ?? fallback;
  if (!tenant) throw new UsageError('--tenant is required');
  if (!TENANT_ID.test(tenant)) throw new UsageError('--tenant must match ^[a-z0-9][a-z0-9_-]{0,62}$');
  return tenant;
}

/** `--expect-head SEQ:DIGEST`, a head saved from an earlier `audit verify --json` (its `head.seq` and `head.digest`). */
function expectHeadOption(values: OptionValues): { seq: number; digest: string } | undefined {
  const raw = stringOption(values, 'expect-head');
  if (raw === undefined) return undefined;
  const match = /^([1-9][0-9]{0,11}):([A-Za-z0-9_-]{43})$/.exec(raw);
  if (!match) throw new UsageError('--expect-head is SEQ:DIGEST, as `audit verify --json` prints head.seq and head.digest');
  return { seq: Number(match[1]), digest: match[2] as string };
}

/** The document client, config and KMS client for the resolved target; `close` releases the sockets. */
function connectAws(values: OptionValues, ctx: Context, required: ('main' | 'audit')[], needs = { auditKey: true }) {
  const target = awsTarget(values, ctx, needs);
  for (const role of required)
    if (!target.tables[role])
      throw new UsageError(`--${role}-table is required (the stack's output; locally it comes from .keysmith/local.json)`);
  const documentClient: DynamoDBDocumentClient = createDocumentClient({
    ...(target.region ? { region: target.region } : {}),
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    ...(target.localCredentials ? { credentials: LOCAL_CREDENTIALS } : {}),
  });
  const retentionDays = integerOption(values, 'retention-days');
  if (required.includes('main') && !target.sealKey)
    throw new UsageError('--seal-key-arn is required (the stack output SealKeyArn; locally .keysmith/seal-key is used)');
  const config: KeysmithConfig = {
    ...loadConfig({}),
    tables: { main: target.tables.main ?? '', audit: target.tables.audit ?? '', usage: '' },
    auditKey: target.auditKey,
    sealKey: target.sealKey,
    auditRetentionDays: retentionDays,
  };
  const kms = new KMS(target.region ? { region: target.region } : {});
  const kmsClient = new KMSClient(target.region ? { region: target.region } : {});
  return {
    documentClient,
    config,
    region: target.region,
    wiring: { documentClient, kms, kmsClient },
    close() {
      documentClient.destroy();
      kms.destroy();
      kmsClient.destroy();
    },
  };
}

/** Turns AWS SDK failures into one readable line (no stack; credentials never appear in them). */
function awsFailure(error: unknown): never {
  if (error instanceof UsageError || error instanceof CliError) throw error;
  if (error instanceof ConfigError)
    throw new UsageError(
      error.message
        .replace('KEYSMITH_LOCAL_WRAPPING_KEY_FILE: ', '--wrapping-key-file: ')
        .replace('KEYSMITH_LOCAL_SEAL_KEY_FILE: ', '--seal-key-file: '),
    );
  const e = error as { name?: string; message?: string };
  throw new CliError(`${e.name ?? 'Error'}: ${e.message ?? String(error)}`);
}

/**
 * The main table's view of the tenant for the cross-check: the clientIds its index lists, and a strongly consistent
 * read of one client through its seals. Refused items are reported in the verify result, not logged here.
 */
async function mainTableView(aws: ReturnType<typeof connectAws>, tenant: string) {
  const store = createStore(aws.config, { ...aws.wiring, onTamper: () => undefined });
  const listed: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listClients(tenant, 100, cursor);
    for (const client of page.items) listed.push(client.clientId);
    cursor = page.nextCursor;
  } while (cursor);
  return { listed, inspect: (clientId: string) => store.inspectClient(clientId) };
}

/** The digests' store and the public keys that check them (the signer's, when the key can sign). */
async function digestParts(target: DigestTarget, region: string | undefined, kmsClient: KMSClient) {
  const store =
    target.store.kind === 's3'
      ? new S3DigestStore(new S3Client(region ? { region } : {}), target.store.bucket)
      : new LocalDigestStore(target.store.directory);
  const key = target.key;
  if (!key) throw new UsageError('--digest-key-arn (or --digest-public-key FILE) is required with the digests');
  let pem: string | undefined;
  if (key.kind === 'file')
    try {
      pem = readFileSync(key.file, 'utf8');
    } catch {
      throw new UsageError(`--digest-public-key: cannot read ${key.file}`);
    }
  const signer = () => {
    if (key.kind === 'kms') return new KmsTokenSigner(kmsClient, key.keyArn);
    try {
      return LocalTokenSigner.fromPem(pem as string);
    } catch {
      throw new UsageError(`${key.file} is not a private key: anchoring signs, so it needs the digest key itself`);
    }
  };
  const keys = key.kind === 'kms' ? [await new KmsTokenSigner(kmsClient, key.keyArn).key()] : [digestKeyFromPem(pem as string)];
  return { store, keys, signer };
}

/** `keysmith audit verify`. */
export async function auditVerify(values: OptionValues, _positionals: string[], ctx: Context): Promise<number> {
  const tenant = tenantOption(values);
  const expectHead = expectHeadOption(values);
  const integrityOnly = values['integrity-only'] === true;
  const digests = digestTarget(values, ctx);
  const aws = connectAws(values, ctx, ['audit'], { auditKey: !integrityOnly });
  try {
    const verifier = createAuditVerifier(aws.config, {
      ...aws.wiring,
      ...(integrityOnly ? {} : { cipher: createAuditRecordCipher(aws.config, aws.wiring) }),
      ...(digests ? { digests: await digestParts(digests, aws.region, aws.wiring.kmsClient) } : {}),
    });
    if (!values.json && !digests)
      ctx.err(
        'Digests not checked: give --digest-bucket and --digest-key-arn (or --digest-public-key) to also catch a rolled-back head, a deleted partition or a restored backup.',
      );
    // With the main table and the seal key, the tenant's clients are cross-checked against the chain.
    const clients = aws.config.tables.main && aws.config.sealKey ? await mainTableView(aws, tenant) : undefined;
    const started = Date.now();
    let lastPrinted = started;
    const report = await verifier.verify(tenant, {
      onProgress: (walked) => {
        const now = Date.now();
        if (now - lastPrinted >= 1000) {
          lastPrinted = now;
          ctx.err(`  ... ${walked} records checked (${Math.round((now - started) / 1000)} s)`);
        }
      },
      ...(expectHead ? { expectHead } : {}),
      ...(clients ? { clients } : {}),
    });
    if (!values.json)
      ctx.err(
        clients
          ? `Cross-checked ${report.clientsChecked ?? 0} clients' sealed last changes against the chain.`
          : 'Clients not cross-checked: give --main-table and --seal-key-arn to also catch a cut tail with an older head written back.',
      );
    if (values.json) printJson(ctx, report);
    else if (report.ok)
      ctx.out(
        report.records === 0 && report.pending === 0
          ? `Tenant ${tenant} has no audit records; nothing to verify.`
          : `The audit chain of tenant ${tenant} is intact: ${report.records} records linked (seq ${report.firstSeq ?? '-'} to ${report.lastSeq ?? '-'})` +
              `${report.pending > 0 ? `, ${report.pending} committed in the last ${aws.config.auditLinkBoundSeconds} s and not linked yet` : ''}` +
              `${report.anchor ? `; signed digest at seq ${report.anchor.seq} (${report.anchor.createdAt})` : ''}` +
              `${report.contentChecked ? '' : '; integrity only (content not decrypted)'}.`,
      );
    else
      ctx.out(
        terminalSafe(
          `The audit chain of tenant ${tenant} is BROKEN at record ${report.problem?.seq} (${report.problem?.kind}): ${report.problem?.detail}. ${report.records} records were intact before it.`,
        ),
      );
    if (!values.json && report.ok && (report.unanchored ?? 0) > 0)
      ctx.err(
        `Warning: ${report.unanchored} records were linked long ago and no digest covers them yet: is the audit function's schedule running?`,
      );
    return report.ok ? 0 : 1;
  } catch (error) {
    return awsFailure(error);
  } finally {
    aws.close();
  }
}

/** The anchor run over the marks of `--anchor-queue-url`, `--anchor-dir` or the local stack's folder. */
async function anchorQueueOf(values: OptionValues, ctx: Context, region: string | undefined, anchor: AuditAnchor) {
  const queueUrl = stringOption(values, 'anchor-queue-url');
  const directory = stringOption(values, 'anchor-dir');
  if (queueUrl && directory) throw new UsageError('--anchor-queue-url and --anchor-dir exclude each other');
  const local = ctx.local();
  const beside = local.wrappingKeyFile ? join(dirname(local.wrappingKeyFile), 'audit-anchors') : undefined;
  let queue: AnchorQueue;
  if (queueUrl) {
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    queue = new SqsAnchorQueue(new SQSClient(region ? { region } : {}), queueUrl);
  } else if (directory ?? (beside && existsSync(beside))) queue = new DirectoryAnchorQueue((directory ?? beside) as string);
  else
    throw new UsageError(
      "--anchor-queue-url is required without --tenant (the stack's AuditAnchorQueueUrl output; locally, run this where .keysmith/ is)",
    );
  return anchor.withQueue(queue).anchorPending();
}

/** `keysmith audit anchor`. */
export async function auditAnchor(values: OptionValues, _positionals: string[], ctx: Context): Promise<number> {
  const tenant = stringOption(values, 'tenant') === undefined ? undefined : tenantOption(values);
  const digests = digestTarget(values, ctx);
  if (!digests) throw new UsageError('--digest-bucket and --digest-key-arn are required (locally, run this where .keysmith/ is)');
  const aws = connectAws(values, ctx, ['audit']);
  try {
    const { store, signer } = await digestParts(digests, aws.region, aws.wiring.kmsClient);
    const anchor = new AuditAnchor({
      documentClient: aws.wiring.documentClient,
      tableName: aws.config.tables.audit,
      cipher: createAuditRecordCipher(aws.config, aws.wiring),
      signer: signer(),
      store,
      onTamper: (report) => ctx.err(terminalSafe(`Refused: ${report.reason} in tenant ${report.tenantId}`)),
    });
    const outcomes = tenant ? [await anchor.anchor(tenant)] : await anchorQueueOf(values, ctx, aws.region, anchor);
    if (values.json) printJson(ctx, { anchored: outcomes });
    else if (outcomes.length === 0) ctx.out('No tenant changed since its last digest.');
    else
      for (const outcome of outcomes)
        ctx.out(
          terminalSafe(
            outcome.written
              ? `${outcome.tenantId}: digest at seq ${outcome.written.seq} written to ${store.location}/${outcome.written.key}`
              : `${outcome.tenantId}: no digest written (${outcome.skipped ?? `failed: ${outcome.failed}`})`,
          ),
        );
    return outcomes.some(
      (outcome) => outcome.failed || outcome.skipped === 'head_invalid' || outcome.skipped === 'head_rolled_back',
    )
      ? 1
      : 0;
  } catch (error) {
    return awsFailure(error);
  } finally {
    aws.close();
  }
}

/** `keysmith bootstrap`. */
export async function bootstrap(values: OptionValues, _positionals: string[], ctx: Context): Promise<number> {
  const tenant = tenantOption(values, DEFAULT_ADMIN_TENANT);
  const aws = connectAws(values, ctx, ['main', 'audit']);
  try {
    const { store, service } = createManagement(aws.config, aws.wiring);
    // A guard against running the bootstrap twice by mistake, not a lock: it looks at this tenant only.
    if (!values.force) {
      let cursor: string | undefined;
      do {
        const page = await store.listClients(tenant, 100, cursor);
        const admin = page.items.find((client) => client.scopes.includes(PLATFORM_ADMIN_SCOPE));
        if (admin)
          throw new CliError(
            `tenant ${tenant} already has a platform admin (${admin.clientId}). Use an access key of it (keysmith keys create), ` +
              'or, if no key of it is left, pass --force to bootstrap another.',
          );
        cursor = page.nextCursor;
      } while (cursor);
    }
    const name = stringOption(values, 'name');
    const created = await bootstrapPlatformAdmin(service, { tenantId: tenant, ...(name ? { name } : {}) });
    if (values.json)
      printJson(ctx, { tenantId: tenant, clientId: created.client.clientId, keyId: created.keyId, accessKey: created.accessKey });
    else {
      ctx.err(`Created platform admin ${created.client.clientId} (key ${created.keyId}) in tenant ${tenant}.`);
      ctx.err('Its access key follows. It is shown only this once: store it as a secret now.');
      ctx.out(created.accessKey);
    }
    return 0;
  } catch (error) {
    return awsFailure(error);
  } finally {
    aws.close();
  }
}
