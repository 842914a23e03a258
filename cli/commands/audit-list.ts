/** `keysmith audit list`: a tenant's decrypted audit records, newest first, through the API. */
import type { AuditAction, AuditActor, DecryptedAuditEvent } from '#sdk/admin-types.ts';
import { CONNECTION_OPTIONS, connect, TENANT_OPTION, tenantOf } from '../admin-api.ts';
import { type Command, integerOption, stringOption } from '../command.ts';
import { printJson, printTable, terminalSafe, UsageError } from '../context.ts';

function isoOption(value: string | undefined, option: string): string | undefined {
  if (value === undefined) return undefined;
  if (Number.isNaN(Date.parse(value))) throw new UsageError(`${option} is an ISO 8601 time, e.g. 2026-01-31T00:00:00Z`);
  return value;
}

// Records come from the API unvalidated: a member that should be there may still be missing.
function actorLabel(actor: AuditActor | undefined): string {
  if (!actor) return '?';
  if (actor.type === 'system') return `system:${actor.name}`;
  if (actor.type === 'platform_admin') return 'platform admin';
  return actor.clientId ?? '?';
}

const targetLabel = (target: DecryptedAuditEvent['target'] | undefined): string =>
  target ? [target.clientId, target.keyId].filter(Boolean).join('/') : '?';

export const auditListCommand: Command = {
  name: ['audit', 'list'],
  summary: "List a tenant's audit records (decrypted), newest first.",
  options: {
    from: { type: 'string', value: 'TIME', description: 'records at or after this ISO 8601 time' },
    to: { type: 'string', value: 'TIME', description: 'records at or before this ISO 8601 time' },
    action: { type: 'string', value: 'ACTION', description: 'only this action, e.g. client.created or access_key.revoked' },
    limit: { type: 'string', value: 'N', description: 'records per page, 1-100 (default 20)' },
    cursor: { type: 'string', value: 'CURSOR', description: 'continue from a previous page' },
    ...TENANT_OPTION,
    ...CONNECTION_OPTIONS,
  },
  async run(values, _positionals, ctx) {
    const query = {
      from: isoOption(stringOption(values, 'from'), '--from'),
      to: isoOption(stringOption(values, 'to'), '--to'),
      // The API refuses an action it does not know (400, listing the valid ones).
      action: stringOption(values, 'action') as AuditAction | undefined,
      limit: integerOption(values, 'limit'),
      cursor: stringOption(values, 'cursor'),
    };
    const admin = connect(values, ctx);
    const tenant = tenantOf(values, ctx, admin);
    const body = await admin.listAuditEvents(tenant, query);
    if (values.json) printJson(ctx, body);
    else {
      if (body.items.length === 0)
        ctx.out(terminalSafe(`No audit records in tenant ${tenant}${query.from || query.to ? ' in that time range' : ''}.`));
      else
        printTable(
          ctx,
          ['SEQ', 'TIME', 'ACTION', 'ACTOR', 'TARGET'],
          body.items.map((event) =>
            event.integrity === 'failed'
              ? [String(event.seq), event.occurredAt, `${event.action} (INTEGRITY FAILED)`, '?', '?']
              : [String(event.seq), event.occurredAt, event.action, actorLabel(event.actor), targetLabel(event.target)],
          ),
        );
      if (body.nextCursor) ctx.out(terminalSafe(`More: --cursor ${body.nextCursor}`));
    }
    return 0;
  },
};
