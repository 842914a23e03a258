/** `keysmith clients create|list|show|update|delete`. */
import type { ClientChanges, ServiceClient } from '#sdk/admin-types.ts';
import { CONNECTION_OPTIONS, connect, TENANT_OPTION, tenantOf } from '../admin-api.ts';
import { type Command, integerOption, type OptionValues, stringOption, stringsOption } from '../command.ts';
import { type Context, printJson, printTable, terminalSafe, UsageError } from '../context.ts';

const LIST_OPTIONS = {
  limit: { type: 'string', value: 'N', description: 'items per page, 1-100 (default 20)' },
  cursor: { type: 'string', value: 'CURSOR', description: 'continue from a previous page' },
  all: { type: 'boolean', description: 'follow every page' },
} as const;

const EDIT_OPTIONS = {
  description: { type: 'string', value: 'TEXT', description: 'a description' },
  scope: { type: 'string', multiple: true, value: 'SCOPE', description: 'a scope the client holds' },
  scopes: { type: 'string', value: '"A B"', description: 'the scopes, space-separated' },
  tag: { type: 'string', multiple: true, value: 'KEY=VALUE', description: 'a tag' },
} as const;

/** The scopes named by --scope and --scopes, or undefined when neither was given. */
function scopesOf(values: OptionValues): string[] | undefined {
  const listed = stringsOption(values, 'scope');
  const spaced = stringOption(values, 'scopes');
  if (listed.length === 0 && spaced === undefined) return undefined;
  return [...listed, ...(spaced ?? '').split(/\s+/).filter((s) => s.length > 0)];
}

function tagsOf(values: OptionValues): Record<string, string> | undefined {
  const listed = stringsOption(values, 'tag');
  if (listed.length === 0) return undefined;
  const tags: Record<string, string> = {};
  for (const tag of listed) {
    const at = tag.indexOf('=');
    if (at < 1) throw new UsageError(`--tag takes KEY=VALUE, got "${tag}"`);
    tags[tag.slice(0, at)] = tag.slice(at + 1);
  }
  return tags;
}

/**
 * The instant `--unused-since` names: an ISO 8601 time, or a span back from now (`90d`, `12h`, `30m`).
 */
export function sinceOption(raw: string, now = Date.now()): number {
  const span = /^([1-9][0-9]{0,5})([dhm])$/.exec(raw);
  if (span) return now - Number(span[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[span[2] as 'd' | 'h' | 'm'];
  const ms = Date.parse(raw);
  if (!/^\d{4}-\d\d-\d\d/.test(raw) || Number.isNaN(ms))
    throw new UsageError(
      `--unused-since takes an ISO 8601 time (2026-09-01T00:00:00Z) or a span such as 90d, 12h or 30m; got "${raw}"`,
    );
  return ms;
}

function printClient(ctx: Context, client: ServiceClient): void {
  const tags = Object.entries(client.tags ?? {}).map(([k, v]) => `${k}=${v}`);
  const rows: [string, string][] = [
    ['clientId', client.clientId],
    ['tenant', client.tenantId],
    ['name', client.name],
    ...(client.description ? ([['description', client.description]] as [string, string][]) : []),
    ['enabled', String(client.enabled)],
    ['scopes', client.scopes.join(' ') || '(none)'],
    ['tags', tags.join(' ') || '(none)'],
    ['issuer', client.issuer],
    ['created', client.createdAt],
    ['updated', client.updatedAt],
    ['last used', client.lastUsedAt ?? 'never'],
  ];
  // Every value is the API's (the tables are untrusted): escaped, so a name cannot drive the terminal or fake a line.
  for (const [label, value] of rows) ctx.out(`${`${label}:`.padEnd(13)}${terminalSafe(value)}`);
}

/** Created before `since` and with no key use recorded since then. */
const isUnusedSince = (client: ServiceClient, since: number): boolean =>
  Date.parse(client.createdAt) < since && (client.lastUsedAt === undefined || Date.parse(client.lastUsedAt) < since);

export const clientsCommands: Command[] = [
  {
    name: ['clients', 'create'],
    summary: 'Create a service client in a tenant.',
    options: {
      name: { type: 'string', value: 'NAME', description: 'the client name (required)' },
      ...EDIT_OPTIONS,
      ...TENANT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    notes: 'Example:\n  keysmith clients create --tenant acme --name billing-worker --scope invoices:read --tag team=billing',
    async run(values, _positionals, ctx) {
      const name = stringOption(values, 'name');
      if (!name) throw new UsageError('--name is required');
      const admin = connect(values, ctx);
      const tenant = tenantOf(values, ctx, admin);
      const description = stringOption(values, 'description');
      const scopes = scopesOf(values);
      const tags = tagsOf(values);
      const body = await admin.createClient(tenant, {
        name,
        ...(description !== undefined ? { description } : {}),
        ...(scopes ? { scopes } : {}),
        ...(tags ? { tags } : {}),
      });
      if (values.json) printJson(ctx, body);
      else {
        ctx.out(terminalSafe(`Created client ${body.clientId} in tenant ${body.tenantId}.`));
        printClient(ctx, body);
        ctx.out(terminalSafe(`Next: keysmith keys create ${body.clientId} --tenant ${body.tenantId}`));
      }
      return 0;
    },
  },
  {
    name: ['clients', 'list'],
    summary: "List a tenant's service clients, newest first; or those unused since a time, to retire.",
    options: {
      ...LIST_OPTIONS,
      'unused-since': {
        type: 'string',
        value: 'TIME',
        description:
          'only clients created before TIME whose keys signed nothing since (ISO 8601, or 90d, 12h, 30m); reads every page',
      },
      ...TENANT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    notes:
      "lastUsedAt is accurate to the deployment's KEYSMITH_LAST_USED_SECONDS (5 minutes by default).\nExample:\n  keysmith clients list --tenant acme --unused-since 90d",
    async run(values, _positionals, ctx) {
      const page = { limit: integerOption(values, 'limit'), cursor: stringOption(values, 'cursor') };
      const unusedSinceRaw = stringOption(values, 'unused-since');
      const unusedSince = unusedSinceRaw === undefined ? undefined : sinceOption(unusedSinceRaw);
      if (unusedSince !== undefined && page.cursor)
        throw new UsageError('--unused-since reads every page itself: leave out --cursor');
      const admin = connect(values, ctx);
      const tenant = tenantOf(values, ctx, admin);
      let items: ServiceClient[];
      let nextCursor: string | undefined;
      let checked = 0;
      if (values.all || unusedSince !== undefined) {
        items = [];
        // One Query of the tenant's clients and one BatchGetItem of their uses per page: no table scan.
        for await (const client of admin.iterateClients(tenant, { ...page, limit: page.limit ?? 100 })) {
          checked++;
          if (unusedSince === undefined || isUnusedSince(client, unusedSince)) items.push(client);
        }
      } else {
        const first = await admin.listClients(tenant, page);
        items = first.items;
        nextCursor = first.nextCursor;
      }
      if (values.json) printJson(ctx, { items, ...(nextCursor ? { nextCursor } : {}) });
      else {
        if (items.length === 0)
          ctx.out(
            terminalSafe(
              unusedSince === undefined
                ? `No clients in tenant ${tenant}.`
                : `No client of tenant ${tenant} is unused since ${new Date(unusedSince).toISOString()} (${checked} checked).`,
            ),
          );
        else
          printTable(
            ctx,
            ['CLIENT ID', 'NAME', 'ENABLED', 'SCOPES', 'CREATED', 'LAST USED'],
            items.map((c) => [
              c.clientId,
              c.name,
              c.enabled ? 'yes' : 'no',
              c.scopes.join(' '),
              c.createdAt,
              c.lastUsedAt ?? 'never',
            ]),
          );
        if (unusedSince !== undefined && items.length > 0)
          ctx.err(
            terminalSafe(
              `${items.length} of ${checked} clients unused since ${new Date(unusedSince).toISOString()}. Retire one with: keysmith clients update CLIENT_ID --tenant ${tenant} --disable (or keysmith keys revoke).`,
            ),
          );
        if (nextCursor) ctx.out(terminalSafe(`More: --cursor ${nextCursor} (or --all)`));
      }
      return 0;
    },
  },
  {
    name: ['clients', 'show'],
    summary: 'Show a service client.',
    positionals: ['CLIENT_ID'],
    options: { ...TENANT_OPTION, ...CONNECTION_OPTIONS },
    async run(values, [clientId], ctx) {
      const admin = connect(values, ctx);
      const body = await admin.getClient(tenantOf(values, ctx, admin), clientId as string);
      if (values.json) printJson(ctx, body);
      else printClient(ctx, body);
      return 0;
    },
  },
  {
    name: ['clients', 'update'],
    summary: "Change a service client's name, description, scopes, tags or enabled state.",
    positionals: ['CLIENT_ID'],
    options: {
      name: { type: 'string', value: 'NAME', description: 'a new name' },
      ...EDIT_OPTIONS,
      enable: { type: 'boolean', description: 'enable the client' },
      disable: { type: 'boolean', description: 'disable the client (its tokens stop working within the revocation bound)' },
      ...TENANT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    notes: '--scope/--scopes and --tag replace the whole list of scopes or tags.',
    async run(values, [clientId], ctx) {
      if (values.enable && values.disable) throw new UsageError('--enable and --disable exclude each other');
      const name = stringOption(values, 'name');
      const description = stringOption(values, 'description');
      const scopes = scopesOf(values);
      const tags = tagsOf(values);
      const change: ClientChanges = {
        ...(name !== undefined ? { name } : {}),
        ...(description !== undefined ? { description } : {}),
        ...(scopes ? { scopes } : {}),
        ...(tags ? { tags } : {}),
        ...(values.enable ? { enabled: true } : values.disable ? { enabled: false } : {}),
      };
      if (Object.keys(change).length === 0)
        throw new UsageError('name something to change: --name, --description, --scope(s), --tag, --enable or --disable');
      const admin = connect(values, ctx);
      const body = await admin.updateClient(tenantOf(values, ctx, admin), clientId as string, change);
      if (values.json) printJson(ctx, body);
      else {
        ctx.out(terminalSafe(`Updated client ${body.clientId}.`));
        printClient(ctx, body);
      }
      return 0;
    },
  },
  {
    name: ['clients', 'delete'],
    summary: 'Delete a service client and revoke all its keys.',
    positionals: ['CLIENT_ID'],
    options: { ...TENANT_OPTION, ...CONNECTION_OPTIONS },
    async run(values, [clientId], ctx) {
      const admin = connect(values, ctx);
      const tenant = tenantOf(values, ctx, admin);
      await admin.deleteClient(tenant, clientId as string);
      if (values.json) printJson(ctx, { deleted: clientId, tenantId: tenant });
      else ctx.out(terminalSafe(`Deleted client ${clientId} of tenant ${tenant}; its keys are revoked.`));
      return 0;
    },
  },
];
