/** `keysmith audit list`: a tenant's decrypted audit records, newest first, through the API. */
import { CONNECTION_OPTIONS, connect, TENANT_OPTION, tenantOf } from '../admin-api.ts';
import { type Command, stringOption } from '../command.ts';
import { printJson, printTable, terminalSafe, UsageError } from '../context.ts';

interface AuditEventView {
  eventId: string;
  seq: number;
  occurredAt: string;
  action: string;
  actor?: { type: string; clientId?: string; name?: string };
  target?: { clientId: string; keyId?: string };
  integrity?: 'failed';
}

function isoOption(value: string | undefined, option: string): string | undefined {
  if (value === undefined) return undefined;
  if (Number.isNaN(Date.parse(value))) throw new UsageError(`${option} is an ISO 8601 time, e.g. 2026-01-31T00:00:00Z`);
  return value;
}

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
    const action = stringOption(values, 'action');
    const query = {
      from: isoOption(stringOption(values, 'from'), '--from'),
      to: isoOption(stringOption(values, 'to'), '--to'),
      action,
      limit: stringOption(values, 'limit'),
      cursor: stringOption(values, 'cursor'),
    };
    const api = connect(values, ctx);
    const tenant = tenantOf(values, ctx, api);
    const { body } = await api.request<{ items: AuditEventView[]; nextCursor?: string }>(
      'GET',
      `/v1/tenants/${encodeURIComponent(tenant)}/audit-events`,
      undefined,
      query,
    );
    if (values.json) printJson(ctx, body);
    else {
      if (body.items.length === 0)
        ctx.out(terminalSafe(`No audit records in tenant ${tenant}${query.from || query.to ? ' in that time range' : ''}.`));
      else
        printTable(
          ctx,
          ['SEQ', 'TIME', 'ACTION', 'ACTOR', 'TARGET'],
          body.items.map((event) => [
            String(event.seq),
            event.occurredAt,
            event.integrity === 'failed' ? `${event.action} (INTEGRITY FAILED)` : event.action,
            event.actor
              ? event.actor.type === 'system'
                ? `system:${event.actor.name}`
                : event.actor.type === 'platform_admin'
                  ? 'platform admin'
                  : (event.actor.clientId ?? '?')
              : '?',
            event.target ? [event.target.clientId, event.target.keyId].filter(Boolean).join('/') : '?',
          ]),
        );
      if (body.nextCursor) ctx.out(terminalSafe(`More: --cursor ${body.nextCursor}`));
    }
    return 0;
  },
};
