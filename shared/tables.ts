/**
 * The DynamoDB table design, as data: the CDK stack and the local stack both create their tables from
 * these definitions, so they cannot drift apart.
 *
 * main table (pk, sk), GSI `byTenant` (gsi1pk, gsi1sk):
 *   service client   pk CLIENT#{clientId}  sk CLIENT          gsi1pk TENANT#{tenantId}  gsi1sk {createdAt}#{clientId}
 *                    (platform admins also: gsi2pk ROLE#platform-admin  gsi2sk {clientId}; sparse index `byRole`)
 *                    seal, keyDigests: the client's sealed state (shared/store.ts)
 *   access key       pk CLIENT#{clientId}  sk KEY#{keyId}     (TTL expiresAtEpoch: 30 days after revocation or expiry)
 * audit table (pk, sk):
 *   audit event      pk TENANT#{tenantId}  sk EVENT#{occurredAt}#{seq}   (occurredAt never decreases within a tenant)
 *   chain head       pk TENANT#{tenantId}  sk HEAD
 */

export type TableRole = 'main' | 'audit';

/** One table's keys, in the terms both CDK and CreateTable understand. */
export interface TableDefinition {
  role: TableRole;
  partitionKey: string;
  sortKey: string;
  globalIndexes: { name: string; partitionKey: string; sortKey: string }[];
  /** The attribute DynamoDB TTL reads, if the table expires items. */
  timeToLiveAttribute?: string;
}

export const MAIN_TABLE: TableDefinition = {
  role: 'main',
  partitionKey: 'pk',
  sortKey: 'sk',
  globalIndexes: [
    { name: 'byTenant', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
    // Sparse: only platform admins have gsi2pk, so the lock-out guard finds them without a scan.
    { name: 'byRole', partitionKey: 'gsi2pk', sortKey: 'gsi2sk' },
  ],
  // Revoked and expired access keys are removed 30 days after revocation or expiry.
  timeToLiveAttribute: 'expiresAtEpoch',
};

export const AUDIT_TABLE: TableDefinition = {
  role: 'audit',
  partitionKey: 'pk',
  sortKey: 'sk',
  globalIndexes: [],
  timeToLiveAttribute: 'expiresAtEpoch',
};

export const TABLE_DEFINITIONS: readonly TableDefinition[] = [MAIN_TABLE, AUDIT_TABLE];

/** Key builders: the only place the key formats are spelled. */
export const keys = {
  client: (clientId: string) => ({ pk: `CLIENT#${clientId}`, sk: 'CLIENT' }),
  accessKey: (clientId: string, keyId: string) => ({ pk: `CLIENT#${clientId}`, sk: `KEY#${keyId}` }),
  clientPartition: (clientId: string) => `CLIENT#${clientId}`,
  tenantClients: (tenantId: string) => `TENANT#${tenantId}`,
  tenantClientSort: (createdAt: string, clientId: string) => `${createdAt}#${clientId}`,
  auditPartition: (tenantId: string) => `TENANT#${tenantId}`,
  auditEventSort: (occurredAt: string, seq: number) => `EVENT#${occurredAt}#${String(seq).padStart(12, '0')}`,
  auditHead: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: 'HEAD' }),
} as const;
