/** `keysmith keys create|list|roll|revoke`. */
import type { JWK } from 'jose';
import type { AccessKey, Algorithm, CreatedAccessKey } from '#sdk/admin-types.ts';
import { ALGORITHMS } from '#shared/model.ts';
import { CONNECTION_OPTIONS, connect, TENANT_OPTION, tenantOf } from '../admin-api.ts';
import { type Command, type OptionValues, stringOption } from '../command.ts';
import { type Context, printJson, printTable, readUserFile, terminalSafe, UsageError } from '../context.ts';

/** Reads a public JWK file; private members are refused here already, so they never leave the machine. */
function readPublicJwk(file: string): JWK {
  let jwk: unknown;
  try {
    jwk = JSON.parse(readUserFile(file, '--public-key-file'));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--public-key-file: ${file} is not JSON (a public JWK is expected)`);
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
    throw new UsageError(`--public-key-file: ${file} must hold one JWK object`);
  if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'].some((member) => member in jwk))
    throw new UsageError(
      `--public-key-file: ${file} holds private key material. Export only the public JWK; the private key stays with you.`,
    );
  return jwk as JWK;
}

const NEW_KEY_OPTIONS = {
  algorithm: { type: 'string', value: 'ALG', description: 'EdDSA (default), ES256 or RS256' },
  'expires-at': { type: 'string', value: 'TIME', description: 'ISO 8601 time after which the key stops working' },
  'public-key-file': {
    type: 'string',
    value: 'FILE',
    description: 'register this public JWK instead of generating a key (no access key is printed)',
  },
} as const;

/** What --algorithm, --expires-at and --public-key-file ask for, checked before anything is sent. */
function newKeyInput(values: OptionValues) {
  const algorithm = stringOption(values, 'algorithm');
  const expiresAt = stringOption(values, 'expires-at');
  const publicKeyFile = stringOption(values, 'public-key-file');
  if (algorithm && !(ALGORITHMS as readonly string[]).includes(algorithm))
    throw new UsageError(`--algorithm must be one of ${ALGORITHMS.join(', ')}`);
  if (algorithm && publicKeyFile) throw new UsageError('--algorithm follows from the key: leave it out with --public-key-file');
  if (expiresAt && Number.isNaN(Date.parse(expiresAt))) throw new UsageError('--expires-at is an ISO 8601 time');
  const publicKey = publicKeyFile ? readPublicJwk(publicKeyFile) : undefined;
  return {
    ...(algorithm ? { algorithm: algorithm as Algorithm } : {}),
    ...(expiresAt ? { expiresAt } : {}),
    ...(publicKey ? { publicKey } : {}),
  };
}

/** Prints a new key: the access key alone on stdout, so `> file` captures exactly the secret; the rest on stderr. */
function printNewKey(ctx: Context, body: CreatedAccessKey, verb: string): void {
  if (body.accessKey) {
    ctx.err(
      terminalSafe(
        `${verb} ${body.algorithm} key ${body.keyId} for client ${body.clientId}${body.expiresAt ? ` (expires ${body.expiresAt})` : ''}.`,
      ),
    );
    ctx.err('Its access key follows. It is shown only this once: store it as a secret now.');
    ctx.out(terminalSafe(body.accessKey));
  } else
    ctx.out(
      terminalSafe(
        `Registered ${body.algorithm} key ${body.keyId} for client ${body.clientId}. Sign tokens with your private key and kid ${body.keyId}.`,
      ),
    );
}

/** A grace period: whole seconds, or a span such as 30m, 12h or 7d (at most 30 days). */
function graceSeconds(values: OptionValues): number | undefined {
  const raw = stringOption(values, 'grace');
  if (raw === undefined) return undefined;
  const match = /^([0-9]{1,7})([smhd]?)$/.exec(raw);
  if (!match) throw new UsageError(`--grace takes seconds or a span such as 30m, 12h or 7d; got "${raw}"`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  if (seconds > 2_592_000) throw new UsageError('--grace is at most 30 days (2592000 seconds)');
  return seconds;
}

export const keysCommands: Command[] = [
  {
    name: ['keys', 'create'],
    summary: "Create an access key for a client and print it once; or register your own key's public JWK.",
    positionals: ['CLIENT_ID'],
    options: { ...NEW_KEY_OPTIONS, ...TENANT_OPTION, ...CONNECTION_OPTIONS },
    notes:
      'The access key is a secret shown only once: store it in your secret manager. At most 5 active keys per client.\nExample:\n  keysmith keys create sc_... --tenant acme > billing-worker.key',
    async run(values, [clientId], ctx) {
      const input = newKeyInput(values);
      const admin = connect(values, ctx);
      const body = await admin.createKey(tenantOf(values, ctx, admin), clientId as string, input);
      if (values.json) printJson(ctx, body);
      else printNewKey(ctx, body, 'Created');
      return 0;
    },
  },
  {
    name: ['keys', 'list'],
    summary: "List a client's keys (public parts only).",
    positionals: ['CLIENT_ID'],
    options: { ...TENANT_OPTION, ...CONNECTION_OPTIONS },
    async run(values, [clientId], ctx) {
      const admin = connect(values, ctx);
      const items: AccessKey[] = [];
      for await (const key of admin.iterateKeys(tenantOf(values, ctx, admin), clientId as string, { limit: 100 }))
        items.push(key);
      if (values.json) printJson(ctx, { items });
      else if (items.length === 0) ctx.out(terminalSafe(`Client ${clientId} has no keys.`));
      else
        printTable(
          ctx,
          ['KEY ID', 'ALGORITHM', 'STATUS', 'ORIGIN', 'CREATED', 'EXPIRES', 'LAST USED'],
          items.map((k) => [
            k.keyId,
            k.algorithm,
            k.replacedBy ? `${k.status} (to ${k.replacedBy})` : k.status,
            k.origin,
            k.createdAt,
            k.expiresAt ?? '-',
            k.lastUsedAt ?? 'never',
          ]),
        );
      return 0;
    },
  },
  {
    name: ['keys', 'roll'],
    summary: 'Roll a key: print a new one, and let the old one keep working for a grace period, then stop.',
    positionals: ['CLIENT_ID', 'KEY_ID'],
    options: {
      grace: {
        type: 'string',
        value: 'SPAN',
        description: 'how long the old key keeps working: seconds, or 30m, 12h, 7d (default 1d, at most 30d)',
      },
      ...NEW_KEY_OPTIONS,
      algorithm: { type: 'string', value: 'ALG', description: "the new key's algorithm (default: the old key's)" },
      ...TENANT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    notes:
      'Zero-downtime rotation: deploy the new access key wherever the old one is used, then let the old one run out (its\nlast use shows in keysmith keys list). --grace 0 stops the old key at once.\nExample:\n  keysmith keys roll sc_... KEYID --tenant acme --grace 2h > billing-worker.key',
    async run(values, [clientId, keyId], ctx) {
      const input = newKeyInput(values);
      const gracePeriodSeconds = graceSeconds(values);
      const admin = connect(values, ctx);
      const body = await admin.rollKey(tenantOf(values, ctx, admin), clientId as string, keyId as string, {
        ...input,
        ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}),
      });
      if (values.json) printJson(ctx, body);
      else {
        printNewKey(ctx, body, 'Rolled to');
        ctx.err(
          terminalSafe(`Key ${keyId} keeps working until its grace period ends (its expiry in keysmith keys list ${clientId}).`),
        );
      }
      return 0;
    },
  },

  {
    name: ['keys', 'revoke'],
    summary: 'Revoke a key: tokens it signed stop working within the revocation bound.',
    positionals: ['CLIENT_ID', 'KEY_ID'],
    options: { ...TENANT_OPTION, ...CONNECTION_OPTIONS },
    async run(values, [clientId, keyId], ctx) {
      const admin = connect(values, ctx);
      await admin.revokeKey(tenantOf(values, ctx, admin), clientId as string, keyId as string);
      if (values.json) printJson(ctx, { revoked: keyId, clientId });
      else ctx.out(terminalSafe(`Revoked key ${keyId} of client ${clientId}.`));
      return 0;
    },
  },
];
