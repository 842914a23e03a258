/**
 * Contract §14 as an attacker who can read and write the main table at will (DynamoDB Local, any credentials) but
 * holds no seal key. Every attack is checked at the three places a token meets Keysmith: the Lambda authorizer
 * (GET /v1/whoami through the local server), the discovery routes (openid-configuration and JWKS), and the SDK
 * verifier; each with a positive control that an untouched key still works. Every token here is checked for the
 * first time after the tampering, so no warm cache can hide the result.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { DeleteCommand, GetCommand, NumberValue, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { ClientTokenVerifier } from '#sdk/verifier.ts';
import { toPublicJwk } from '#shared/access-key.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import type { TamperReport } from '#shared/store.ts';
import { createStore } from '#shared/wiring.ts';
import { AUDIENCE, ISSUER_BASE, newTenant, ownKeyToken, type TestApp, useTestApp, waitSeconds } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const db = createDocumentClient();
const table = () => app.config.tables.main;
const clientKey = (clientId: string) => ({ pk: `CLIENT#${clientId}`, sk: 'CLIENT' });
const keyKey = (clientId: string, keyId: string) => ({ pk: `CLIENT#${clientId}`, sk: `KEY#${keyId}` });

async function getItem(key: Record<string, string>): Promise<Record<string, unknown>> {
  const { Item } = await db.send(new GetCommand({ TableName: table(), Key: key, ConsistentRead: true }));
  if (!Item) throw new Error(`no item ${JSON.stringify(key)}`);
  return Item;
}
const putItem = (Item: Record<string, unknown>) => db.send(new PutCommand({ TableName: table(), Item }));

/** What each of the three verifiers says of a token, and whether the client's JWKS publishes the key. */
async function verdicts(token: string, clientId: string, keyId: string) {
  const whoami = await app.call('GET', '/v1/whoami', { token });
  const configuration = await app.call('GET', `/v1/clients/${clientId}/.well-known/openid-configuration`);
  const jwks = await app.call('GET', `/v1/clients/${clientId}/.well-known/openid-configuration/jwks`);
  const verifier = new ClientTokenVerifier({
    issuerBase: ISSUER_BASE,
    audiences: AUDIENCE,
    fetch: (input, init) => app.fetch(String(input).slice(ISSUER_BASE.length), init),
  });
  const sdk = await verifier.verify(token).then(
    () => 'allowed',
    (error: Error) => error.name,
  );
  return {
    authorizer: whoami.status,
    scopes: whoami.body?.scopes as string | undefined,
    discovery: configuration.status,
    published: jwks.status === 200 && (jwks.body.keys as { kid: string }[]).some((k) => k.kid === keyId),
    sdk,
  };
}

const REFUSED_KEY = { authorizer: 401, published: false, sdk: 'TokenRejectedError' };
const REFUSED_CLIENT = { authorizer: 401, discovery: 404, published: false, sdk: 'TokenRejectedError' };
const ALLOWED = { authorizer: 200, discovery: 200, published: true, sdk: 'allowed' };

/** A client of a fresh tenant with two generated keys (tokens minted, never used yet). */
async function victim(scopes: string[] = ['billing:read']) {
  const tenant = newTenant();
  const client = await app.createClient(tenant, { scopes });
  const first = await app.createKey(tenant, client.clientId);
  const second = await app.createKey(tenant, client.clientId);
  return {
    tenant,
    clientId: client.clientId as string,
    first: { keyId: first.keyId as string, token: await app.token(first.accessKey) },
    second: { keyId: second.keyId as string, token: await app.token(second.accessKey) },
  };
}

/** An untouched client of its own, for the positive control of attacks that refuse a whole client. */
async function control() {
  const { clientId, keyId, token } = await app.clientWithToken(newTenant());
  return { clientId, keyId, token };
}

const attackerKey = (): KeyObject => generateKeyPairSync('ed25519').privateKey;

describe('untrusted storage: what grants access is sealed (contract §14)', () => {
  it('an injected key item (the attacker’s own public key) verifies nowhere; the real keys still do', async () => {
    const v = await victim();
    const template = await getItem(keyKey(v.clientId, v.first.keyId));
    const privateKey = attackerKey();
    const keyId = 'injected0001';
    // The injection the review found: the attacker's key in the bootstrapped platform admin's own partition.
    const admin = app.adminAccessKey.split('.');
    const adminTemplate = await getItem(keyKey(admin[0]!, admin[1]!));
    await putItem({ ...adminTemplate, ...keyKey(admin[0]!, keyId), keyId, publicKey: toPublicJwk(createPublicKey(privateKey)) });
    await putItem({ ...template, ...keyKey(v.clientId, keyId), keyId, publicKey: toPublicJwk(createPublicKey(privateKey)) });

    const injected = await ownKeyToken(privateKey, 'EdDSA', keyId, v.clientId);
    expect(await verdicts(injected, v.clientId, keyId)).toMatchObject(REFUSED_KEY);
    const asAdmin = await ownKeyToken(privateKey, 'EdDSA', keyId, admin[0]!);
    expect((await app.call('GET', '/v1/whoami', { token: asAdmin })).status).toBe(401);
    expect((await app.call('POST', `/v1/tenants/${newTenant()}/clients`, { token: asAdmin, body: { name: 'x' } })).status).toBe(
      401,
    );

    expect(await verdicts(v.first.token, v.clientId, v.first.keyId)).toMatchObject(ALLOWED);

    // The refusal is reported with its reason (the handlers log it and count it as a metric).
    const reports: TamperReport[] = [];
    await createStore(app.config, { onTamper: (report) => reports.push(report) }).getClientWithKeys(v.clientId);
    expect(reports).toEqual([{ reason: 'key_not_sealed', clientId: v.clientId, tenantId: v.tenant, keyId }]);
  });

  it('widened scopes (even keysmith:platform-admin) or a changed tenant: the client is treated as absent', async () => {
    for (const edit of [
      { UpdateExpression: 'SET scopes = list_append(scopes, :extra)', values: { ':extra': ['keysmith:platform-admin'] } },
      { UpdateExpression: 'SET tenantId = :other', values: { ':other': newTenant('other') } },
    ]) {
      const v = await victim();
      const untouched = await control();
      await db.send(
        new UpdateCommand({
          TableName: table(),
          Key: clientKey(v.clientId),
          UpdateExpression: edit.UpdateExpression,
          ExpressionAttributeValues: edit.values,
        }),
      );
      expect(await verdicts(v.first.token, v.clientId, v.first.keyId), edit.UpdateExpression).toMatchObject(REFUSED_CLIENT);
      expect((await app.call('GET', `/v1/tenants/${v.tenant}/clients/${v.clientId}`, { token: app.adminToken })).status).toBe(
        404,
      );
      expect(await verdicts(untouched.token, untouched.clientId, untouched.keyId)).toMatchObject(ALLOWED);
    }
  });

  it('a disabled client is not re-enabled by editing it, nor by writing back its item from before it was disabled', async () => {
    for (const attack of ['edit', 'write back'] as const) {
      const v = await victim();
      const untouched = await control();
      const before = await getItem(clientKey(v.clientId));
      const path = `/v1/tenants/${v.tenant}/clients/${v.clientId}`;
      expect((await app.call('PATCH', path, { token: app.adminToken, body: { enabled: false } })).status).toBe(200);
      if (attack === 'edit')
        await db.send(
          new UpdateCommand({
            TableName: table(),
            Key: clientKey(v.clientId),
            UpdateExpression: 'SET enabled = :on',
            ExpressionAttributeValues: { ':on': true },
          }),
        );
      else await putItem(before);
      const refused = await verdicts(v.first.token, v.clientId, v.first.keyId);
      expect(refused.authorizer, attack).toBe(401);
      expect(refused.published, attack).toBe(false);
      expect(refused.sdk, attack).toBe('TokenRejectedError');
      expect(await verdicts(untouched.token, untouched.clientId, untouched.keyId)).toMatchObject(ALLOWED);
    }
  });

  it('a revoked key is not brought back by editing it, nor by writing back its item saved before the revocation', async () => {
    for (const attack of ['edit', 'write back'] as const) {
      const v = await victim();
      const saved = await getItem(keyKey(v.clientId, v.first.keyId));
      const revoke = await app.call('DELETE', `/v1/tenants/${v.tenant}/clients/${v.clientId}/access-keys/${v.first.keyId}`, {
        token: app.adminToken,
      });
      expect(revoke.status).toBe(204);
      if (attack === 'edit')
        await db.send(
          new UpdateCommand({
            TableName: table(),
            Key: keyKey(v.clientId, v.first.keyId),
            UpdateExpression: 'SET #status = :active REMOVE revokedAt',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':active': 'active' },
          }),
        );
      else await putItem(saved);
      expect(await verdicts(v.first.token, v.clientId, v.first.keyId), attack).toMatchObject(REFUSED_KEY);
      // The positive control: the client's other key, untouched, still works.
      expect(await verdicts(v.second.token, v.clientId, v.second.keyId), attack).toMatchObject(ALLOWED);
    }
  });

  it('an expired key is not brought back by extending its expiresAt', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const expiring = await app.createKey(tenant, client.clientId, { expiresAt: new Date(Date.now() + 2000).toISOString() });
    const kept = await app.createKey(tenant, client.clientId);
    await waitSeconds(2.2);
    await db.send(
      new UpdateCommand({
        TableName: table(),
        Key: keyKey(client.clientId, expiring.keyId),
        UpdateExpression: 'SET expiresAt = :later',
        ExpressionAttributeValues: { ':later': '2099-01-01T00:00:00.000Z' },
      }),
    );
    const token = await app.token(expiring.accessKey);
    expect(await verdicts(token, client.clientId, expiring.keyId)).toMatchObject(REFUSED_KEY);
    expect(await verdicts(await app.token(kept.accessKey), client.clientId, kept.keyId)).toMatchObject(ALLOWED);
  });

  it('a key item moved into another client’s partition does not verify for that client', async () => {
    // The attacker holds the private half of a key it registered for a client of its own, and moves the key item.
    const from = await victim();
    const to = await victim(['keysmith:admin']);
    const privateKey = attackerKey();
    const own = await app.createKey(from.tenant, from.clientId, { publicKey: toPublicJwk(createPublicKey(privateKey)) });
    const moved = await getItem(keyKey(from.clientId, own.keyId));
    await putItem({ ...moved, ...keyKey(to.clientId, own.keyId), clientId: to.clientId, tenantId: to.tenant });
    const token = await ownKeyToken(privateKey, 'EdDSA', own.keyId, to.clientId);
    expect(await verdicts(token, to.clientId, own.keyId)).toMatchObject(REFUSED_KEY);
    // (A moved item written at a later version than the destination's makes the whole destination absent, as an
    // older client item written back would: tampering shows; availability is out of reach anyway.)
    const ownToken = await ownKeyToken(privateKey, 'EdDSA', own.keyId, from.clientId);
    expect(await verdicts(ownToken, from.clientId, own.keyId)).toMatchObject(ALLOWED);
  });

  it('items with no seal (written around Keysmith, or before seals existed) are treated as absent', async () => {
    const v = await victim();
    const untouched = await control();
    await db.send(
      new UpdateCommand({ TableName: table(), Key: clientKey(v.clientId), UpdateExpression: 'REMOVE seal, keyDigests' }),
    );
    expect(await verdicts(v.first.token, v.clientId, v.first.keyId)).toMatchObject(REFUSED_CLIENT);
    const { Items = [] } = await db.send(
      new QueryCommand({
        TableName: table(),
        IndexName: 'byTenant',
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': `TENANT#${v.tenant}` },
      }),
    );
    expect(Items.length).toBe(1);
    expect((await app.call('GET', `/v1/tenants/${v.tenant}/clients`, { token: app.adminToken })).body.items).toEqual([]);
    expect(await verdicts(untouched.token, untouched.clientId, untouched.keyId)).toMatchObject(ALLOWED);
    // Deleting data stays possible (availability is out of reach): it only ever takes access away.
    await db.send(new DeleteCommand({ TableName: table(), Key: clientKey(untouched.clientId) }));
    expect((await app.call('GET', `/v1/clients/${untouched.clientId}/.well-known/openid-configuration/jwks`)).status).toBe(404);
  });

  it('an older client item written back alone is refused, also for a client with no key, and its next change too', async () => {
    // With keys: they were re-written at the newer version. Without: the state witness says so.
    for (const withKeys of [true, false]) {
      const tenant = newTenant();
      const client = await app.createClient(tenant, { scopes: ['billing:read', 'billing:write'] });
      const key = withKeys ? await app.createKey(tenant, client.clientId) : undefined;
      const before = await getItem(clientKey(client.clientId));
      const path = `/v1/tenants/${tenant}/clients/${client.clientId}`;
      const narrowed = await app.call('PATCH', path, {
        token: app.adminToken,
        body: { scopes: ['billing:read'], enabled: false },
      });
      expect(narrowed.status).toBe(200);
      await putItem(before);
      expect((await app.call('GET', path, { token: app.adminToken })).status, `withKeys=${withKeys}`).toBe(404);
      // The admin's next change is planned from no client at all, so the old state is never sealed anew.
      expect((await app.call('POST', `${path}/access-keys`, { token: app.adminToken, body: {} })).status).toBe(404);
      if (key) expect((await app.call('GET', '/v1/whoami', { token: await app.token(key.accessKey) })).status).toBe(401);
    }
  });

  it('a deleted client is not brought back by writing back its client item', async () => {
    const v = await victim();
    const before = await getItem(clientKey(v.clientId));
    expect((await app.call('DELETE', `/v1/tenants/${v.tenant}/clients/${v.clientId}`, { token: app.adminToken })).status).toBe(
      204,
    );
    await putItem(before);
    expect(await verdicts(v.first.token, v.clientId, v.first.keyId)).toMatchObject(REFUSED_CLIENT);
    expect((await app.call('GET', `/v1/tenants/${v.tenant}/clients/${v.clientId}`, { token: app.adminToken })).status).toBe(404);
  });

  it('attributes of the wrong type (NULL for a string, a number for a map) are tampering, not another encoding', async () => {
    // A key whose expiry is set to NULL must not become a key that never expires (and is never re-sealed).
    const v = await victim();
    const before = await getItem(clientKey(v.clientId));
    await db.send(
      new UpdateCommand({
        TableName: table(),
        Key: keyKey(v.clientId, v.first.keyId),
        UpdateExpression: 'SET expiresAt = :null',
        ExpressionAttributeValues: { ':null': null },
      }),
    );
    expect(await verdicts(v.first.token, v.clientId, v.first.keyId)).toMatchObject(REFUSED_KEY);
    expect(await verdicts(v.second.token, v.clientId, v.second.keyId)).toMatchObject(ALLOWED);
    const path = `/v1/tenants/${v.tenant}/clients/${v.clientId}`;
    expect((await app.call('PATCH', path, { token: app.adminToken, body: { enabled: false } })).status).toBe(200);
    await putItem(before);
    expect((await app.call('GET', path, { token: app.adminToken })).status).toBe(404);
    const again = await app.call('GET', `/v1/clients/${v.clientId}/.well-known/openid-configuration/jwks`);
    expect(again.status).toBe(404);

    for (const [attribute, value] of [
      ['tags', 12345],
      ['description', null],
      ['enabled', 'true'],
    ] as const) {
      const w = await victim();
      await db.send(
        new UpdateCommand({
          TableName: table(),
          Key: clientKey(w.clientId),
          UpdateExpression: 'SET #a = :v',
          ExpressionAttributeNames: { '#a': attribute },
          ExpressionAttributeValues: { ':v': value },
        }),
      );
      expect(await verdicts(w.first.token, w.clientId, w.first.keyId), attribute).toMatchObject(REFUSED_CLIENT);
    }
  });

  it('items that cannot be read as Keysmith wrote them are absent, never a 5xx', async () => {
    const cases: [string, (v: Awaited<ReturnType<typeof victim>>) => Promise<unknown>][] = [
      [
        'a key without its public key',
        (v) =>
          db.send(
            new UpdateCommand({
              TableName: table(),
              Key: keyKey(v.clientId, v.first.keyId),
              UpdateExpression: 'REMOVE publicKey',
            }),
          ),
      ],
      [
        'a number no JS number holds, on a key',
        (v) =>
          db.send(
            new UpdateCommand({
              TableName: table(),
              Key: keyKey(v.clientId, v.first.keyId),
              UpdateExpression: 'SET sealedVersion = :huge',
              ExpressionAttributeValues: { ':huge': NumberValue.from('1E+100') },
            }),
          ),
      ],
      [
        'a version beyond 2^53 on the client',
        (v) =>
          db.send(
            new UpdateCommand({
              TableName: table(),
              Key: clientKey(v.clientId),
              UpdateExpression: 'SET version = :huge',
              ExpressionAttributeValues: { ':huge': NumberValue.from('1152921504606846976') },
            }),
          ),
      ],
    ];
    for (const [name, tamper] of cases) {
      const v = await victim();
      await tamper(v);
      const jwks = await app.call('GET', `/v1/clients/${v.clientId}/.well-known/openid-configuration/jwks`);
      expect(jwks.status, name).toBeLessThan(500);
      const whoami = await app.call('GET', '/v1/whoami', { token: v.first.token });
      expect(whoami.status, name).toBe(401);
      const get = await app.call('GET', `/v1/tenants/${v.tenant}/clients/${v.clientId}`, { token: app.adminToken });
      expect(get.status, name).toBeLessThan(500);
      const list = await app.call('GET', `/v1/tenants/${v.tenant}/clients`, { token: app.adminToken });
      expect(list.status, name).toBe(200);
    }
  });
});
