/** `keysmith keys create|list|revoke`. */
import type { JWK } from 'jose';
import type { AccessKey, Algorithm } from '#sdk/admin-types.ts';
import { ALGORITHMS } from '#shared/model.ts';
import { CONNECTION_OPTIONS, connect, TENANT_OPTION, tenantOf } from '../admin-api.ts';
import { type Command, stringOption } from '../command.ts';
import { printJson, printTable, readUserFile, terminalSafe, UsageError } from '../context.ts';

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

export const keysCommands: Command[] = [
  {
    name: ['keys', 'create'],
    summary: "Create an access key for a client and print it once; or register your own key's public JWK.",
    positionals: ['CLIENT_ID'],
    options: {
      algorithm: { type: 'string', value: 'ALG', description: 'EdDSA (default), ES256 or RS256' },
      'expires-at': { type: 'string', value: 'TIME', description: 'ISO 8601 time after which the key stops working' },
      'public-key-file': {
        type: 'string',
        value: 'FILE',
        description: 'register this public JWK instead of generating a key (no access key is printed)',
      },
      ...TENANT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    notes:
      'The access key is a secret shown only once: store it in your secret manager. At most 5 active keys per client.\nExample:\n  keysmith keys create sc_... --tenant acme > billing-worker.key',
    async run(values, [clientId], ctx) {
      const algorithm = stringOption(values, 'algorithm');
      const expiresAt = stringOption(values, 'expires-at');
      const publicKeyFile = stringOption(values, 'public-key-file');
      if (algorithm && !(ALGORITHMS as readonly string[]).includes(algorithm))
        throw new UsageError(`--algorithm must be one of ${ALGORITHMS.join(', ')}`);
      if (algorithm && publicKeyFile)
        throw new UsageError('--algorithm follows from the key: leave it out with --public-key-file');
      if (expiresAt && Number.isNaN(Date.parse(expiresAt))) throw new UsageError('--expires-at is an ISO 8601 time');
      const publicKey = publicKeyFile ? readPublicJwk(publicKeyFile) : undefined;
      const admin = connect(values, ctx);
      const body = await admin.createKey(tenantOf(values, ctx, admin), clientId as string, {
        ...(algorithm ? { algorithm: algorithm as Algorithm } : {}),
        ...(expiresAt ? { expiresAt } : {}),
        ...(publicKey ? { publicKey } : {}),
      });
      if (values.json) printJson(ctx, body);
      else if (body.accessKey) {
        // The access key alone on stdout, so `> file` captures exactly the secret; the rest goes to stderr.
        ctx.err(
          terminalSafe(
            `Created ${body.algorithm} key ${body.keyId} for client ${body.clientId}${body.expiresAt ? ` (expires ${body.expiresAt})` : ''}.`,
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
          ['KEY ID', 'ALGORITHM', 'STATUS', 'ORIGIN', 'CREATED', 'EXPIRES'],
          items.map((k) => [k.keyId, k.algorithm, k.status, k.origin, k.createdAt, k.expiresAt ?? '-']),
        );
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
