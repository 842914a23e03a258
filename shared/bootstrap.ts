/** Creating the first platform admin (contract §6): locally by `npm start`, in AWS by `keysmith bootstrap`. */
import { ADMIN_SCOPE, PLATFORM_ADMIN_SCOPE, type ServiceClient } from './model.ts';
import type { KeysmithService } from './service.ts';

/** The tenant the platform admin belongs to unless told otherwise. */
export const DEFAULT_ADMIN_TENANT = 'platform';

/** A new platform admin client and its access key (shown once). */
export interface BootstrappedAdmin {
  client: ServiceClient;
  keyId: string;
  accessKey: string;
}

/**
 * Creates a service client holding `keysmith:platform-admin` and `keysmith:admin`, and an access key for it.
 * Runs as the system actor (nobody holds a scope yet to grant it); both steps are audited.
 */
export async function bootstrapPlatformAdmin(
  service: KeysmithService,
  { tenantId = DEFAULT_ADMIN_TENANT, name = 'platform-admin' }: { tenantId?: string; name?: string } = {},
): Promise<BootstrappedAdmin> {
  const actor = { type: 'system' as const, name: 'bootstrap' };
  const client = await service.createClient(actor, tenantId, {
    name,
    description: 'First platform admin, made by the bootstrap step.',
    scopes: [PLATFORM_ADMIN_SCOPE, ADMIN_SCOPE],
  });
  const { key, accessKey } = await service.createKey(actor, tenantId, client.clientId, {});
  if (!accessKey) throw new Error('bootstrap: a generated key must come with its access key');
  return { client, keyId: key.keyId, accessKey };
}
