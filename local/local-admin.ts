/** The local platform admin: reused across restarts when the data persists (KEYSMITH_DATA_DIR), made anew otherwise. */
import { existsSync, readFileSync } from 'node:fs';
import { parseAccessKey } from '#shared/access-key.ts';
import { bootstrapPlatformAdmin } from '#shared/bootstrap.ts';
import type { KeysmithConfig } from '#shared/config.ts';
import { isKeyActive } from '#shared/model.ts';
import { createManagement } from '#shared/wiring.ts';

export interface LocalAdmin {
  tenantId: string;
  clientId: string;
  accessKey: string;
  reused: boolean;
}

function savedAccessKey(stateFile: string): string | undefined {
  if (!existsSync(stateFile)) return undefined;
  try {
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { adminAccessKey?: unknown };
    return typeof saved.adminAccessKey === 'string' ? saved.adminAccessKey : undefined;
  } catch {
    return undefined;
  }
}

export async function bootstrapLocalAdmin(config: KeysmithConfig, stateFile: string, tenantId: string): Promise<LocalAdmin> {
  const { store, service } = createManagement(config);
  const saved = savedAccessKey(stateFile);
  if (saved) {
    try {
      const parsed = parseAccessKey(saved);
      const found = await store.getClientWithKeys(parsed.clientId);
      const key = found?.keys.find((k) => k.keyId === parsed.keyId);
      if (found?.client.enabled && key && isKeyActive(key, Date.now()))
        return { tenantId: found.client.tenantId, clientId: parsed.clientId, accessKey: saved, reused: true };
    } catch {
      // A stale or unreadable key: bootstrap a new admin below.
    }
  }
  const admin = await bootstrapPlatformAdmin(service, { tenantId });
  return { tenantId, clientId: admin.client.clientId, accessKey: admin.accessKey, reused: false };
}
