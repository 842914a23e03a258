/**
 * No lock-out (contract §14): a change that would leave no enabled platform admin with an active key is 409
 * `last_platform_admin`. On tables of its own (the shared test tables hold every test file's platform admin).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createTables, localClient } from '#local/dynamodb-local.ts';
import { bootstrapPlatformAdmin } from '#shared/bootstrap.ts';
import { loadConfig } from '#shared/config.ts';
import { randomBase62 } from '#shared/ids.ts';
import { type Actor, ADMIN_SCOPE, PLATFORM_ADMIN_SCOPE } from '#shared/model.ts';
import type { KeysmithService } from '#shared/service.ts';
import { createManagement } from '#shared/wiring.ts';

const suffix = randomBase62(8).toLowerCase();
const config = {
  ...loadConfig(),
  tables: { main: `lockout-main-${suffix}`, audit: `lockout-audit-${suffix}`, usage: `lockout-usage-${suffix}` },
};
let service: KeysmithService;
const system: Actor = { type: 'system', name: 'test' };

beforeAll(async () => {
  const client = localClient(process.env.AWS_ENDPOINT_URL_DYNAMODB as string);
  await createTables(client, config.tables);
  client.destroy();
  service = createManagement(config).service;
});

const lastAdmin = { status: 409, code: 'last_platform_admin' };

/** A platform admin (enabled, both scopes, one active key) in `tenantId`. */
async function platformAdmin(name: string, tenantId = 'platform') {
  const admin = await bootstrapPlatformAdmin(service, { tenantId, name });
  const actor: Actor = {
    type: 'client',
    clientId: admin.client.clientId,
    tenantId,
    keyId: admin.keyId,
    scopes: [PLATFORM_ADMIN_SCOPE, ADMIN_SCOPE],
  };
  return { clientId: admin.client.clientId, tenantId, keyId: admin.keyId, actor };
}

describe('the last platform admin cannot be locked out', () => {
  it('refuses deleting, disabling, de-scoping the last one or revoking its last key; other changes go through', async () => {
    const a = await platformAdmin('a');
    // A platform admin without an active key does not count.
    const keyless = await service.createClient(a.actor, 'platform', { name: 'keyless', scopes: [PLATFORM_ADMIN_SCOPE] });

    await expect(service.deleteClient(a.actor, 'platform', a.clientId)).rejects.toMatchObject(lastAdmin);
    await expect(service.updateClient(a.actor, 'platform', a.clientId, { enabled: false })).rejects.toMatchObject(lastAdmin);
    await expect(service.updateClient(a.actor, 'platform', a.clientId, { scopes: [ADMIN_SCOPE] })).rejects.toMatchObject(
      lastAdmin,
    );
    await expect(service.revokeKey(a.actor, 'platform', a.clientId, a.keyId)).rejects.toMatchObject(lastAdmin);
    await expect(service.revokeKey(system, 'platform', a.clientId, a.keyId)).rejects.toMatchObject(lastAdmin);

    // Nothing was changed by the refusals; changes that keep it an admin are fine.
    expect(await service.getClient('platform', a.clientId)).toMatchObject({
      enabled: true,
      scopes: [PLATFORM_ADMIN_SCOPE, ADMIN_SCOPE],
    });
    await service.updateClient(a.actor, 'platform', a.clientId, { name: 'renamed' });
    const second = await service.createKey(a.actor, 'platform', a.clientId, {});
    await service.revokeKey(a.actor, 'platform', a.clientId, a.keyId);
    await expect(service.revokeKey(a.actor, 'platform', a.clientId, second.key.keyId)).rejects.toMatchObject(lastAdmin);
    await service.deleteClient(a.actor, 'platform', keyless.clientId);
  });

  it('does not count a key in its grace period: the last admin cannot roll its key and then revoke the new one', async () => {
    // Tables of this test's own: the admin made here is surely the only one.
    const own = randomBase62(8).toLowerCase();
    const ownConfig = {
      ...config,
      tables: { main: `lockout-roll-main-${own}`, audit: `lockout-roll-audit-${own}`, usage: `lockout-roll-usage-${own}` },
    };
    const client = localClient(process.env.AWS_ENDPOINT_URL_DYNAMODB as string);
    await createTables(client, ownConfig.tables);
    client.destroy();
    const ownService = createManagement(ownConfig).service;
    const admin = await bootstrapPlatformAdmin(ownService, { tenantId: 'platform', name: 'only' });
    const actor: Actor = {
      type: 'client',
      clientId: admin.client.clientId,
      tenantId: 'platform',
      keyId: admin.keyId,
      scopes: [PLATFORM_ADMIN_SCOPE, ADMIN_SCOPE],
    };
    const next = await ownService.rollKey(actor, 'platform', admin.client.clientId, admin.keyId, { gracePeriodSeconds: 3600 });
    await expect(ownService.revokeKey(actor, 'platform', admin.client.clientId, next.key.keyId)).rejects.toMatchObject(lastAdmin);
    // Rolling the new key again is fine: another key that counts takes its place.
    const third = await ownService.rollKey(actor, 'platform', admin.client.clientId, next.key.keyId, { gracePeriodSeconds: 0 });
    expect(third.key.status).toBe('active');
  });

  it('with a second platform admin either may go, but not both: of two concurrent attempts exactly one wins', async () => {
    // In two tenants, so that their audit chains do not serialize the two changes: only the guard's check does.
    const first = await platformAdmin('first');
    const second = await platformAdmin('second', 'platform-two');
    // Leave only these two enabled (the guard lets the others go while they stay).
    for (const c of (await service.listClients('platform', 100)).items)
      if (c.enabled && c.clientId !== first.clientId)
        await service.updateClient(system, 'platform', c.clientId, { enabled: false });
    const disable = (admin: typeof first) =>
      service.updateClient(admin.actor, admin.tenantId, admin.clientId, { enabled: false });
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled([disable(first), disable(second)]);
      expect(
        results.filter((r) => r.status === 'fulfilled'),
        `round ${round}`,
      ).toHaveLength(1);
      expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject(lastAdmin);
      const disabled = results[0]!.status === 'fulfilled' ? first : second;
      await service.updateClient(system, disabled.tenantId, disabled.clientId, { enabled: true });
    }
    await service.deleteClient(first.actor, 'platform', first.clientId);
    await expect(service.deleteClient(second.actor, 'platform-two', second.clientId)).rejects.toMatchObject(lastAdmin);
  });
});
