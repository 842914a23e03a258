/**
 * The AWS side of `keysmith audit verify` and `keysmith bootstrap`: DynamoDB and KMS clients built from the
 * operator's credentials, and the shared wiring. Imported only by those commands (the AWS SDK loads slowly).
 */
import { KMS, KMSClient } from '@aws-sdk/client-kms';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { bootstrapPlatformAdmin, DEFAULT_ADMIN_TENANT } from '#shared/bootstrap.ts';
import { ConfigError, type KeysmithConfig, loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { TENANT_ID } from '#shared/ids.ts';
import { PLATFORM_ADMIN_SCOPE } from '#shared/model.ts';
import { createAuditLog, createManagement, createStore } from '#shared/wiring.ts';
import { integerOption, type OptionValues, stringOption } from './command.ts';
import { awsTarget } from './commands/operator.ts';
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
function connectAws(values: OptionValues, ctx: Context, required: ('main' | 'audit')[]) {
  const target = awsTarget(values, ctx);
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
    tables: { main: target.tables.main ?? '', audit: target.tables.audit ?? '' },
    auditKey: target.auditKey,
    sealKey: target.sealKey,
    auditRetentionDays: retentionDays,
  };
  const kms = new KMS(target.region ? { region: target.region } : {});
  const kmsClient = new KMSClient(target.region ? { region: target.region } : {});
  return {
    documentClient,
    config,
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

/** `keysmith audit verify`. */
export async function auditVerify(values: OptionValues, _positionals: string[], ctx: Context): Promise<number> {
  const tenant = tenantOption(values);
  const expectHead = expectHeadOption(values);
  const aws = connectAws(values, ctx, ['audit']);
  try {
    const audit = createAuditLog(aws.config, aws.wiring);
    // With the main table and the seal key, the tenant's clients are cross-checked against the chain.
    const clients = aws.config.tables.main && aws.config.sealKey ? await mainTableView(aws, tenant) : undefined;
    const started = Date.now();
    let lastPrinted = started;
    const report = await audit.verify(tenant, {
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
        report.records === 0
          ? `Tenant ${tenant} has no audit records; nothing to verify.`
          : `The audit chain of tenant ${tenant} is intact: ${report.records} records (seq ${report.firstSeq} to ${report.lastSeq}).`,
      );
    else
      ctx.out(
        terminalSafe(
          `The audit chain of tenant ${tenant} is BROKEN at record ${report.problem?.seq} (${report.problem?.kind}): ${report.problem?.detail}. ${report.records} records were intact before it.`,
        ),
      );
    return report.ok ? 0 : 1;
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
