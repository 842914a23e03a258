/**
 * The DynamoDB table design, as data: the CDK stack and the local stack both create their tables from
 * these definitions, so they cannot drift apart.
 *
 * main table (pk, sk), GSI `byTenant` (gsi1pk, gsi1sk):
 *   service client   pk CLIENT#{clientId}  sk CLIENT          gsi1pk TENANT#{tenantId}  gsi1sk {createdAt}#{clientId}
 *                    (platform admins also: gsi2pk ROLE#platform-admin  gsi2sk {clientId}; sparse index `byRole`)
 *                    seal, keyDigests: the client's sealed state (shared/store.ts)
 *   access key       pk CLIENT#{clientId}  sk KEY#{keyId}     (TTL expiresAtEpoch: 30 days after revocation or expiry)
 * audit table (pk, sk), stream KEYS_ONLY (read by the linker):
 *   audit event      pk TENANT#{tenantId}  sk EVENT#{occurredAt}#{eventId}   (written by the change; once linked also
 *                    seq, prevLink, link, linkedAt: its place in the tenant's hash chain)
 *   chain head       pk TENANT#{tenantId}  sk HEAD     (the linker's: last seq, link and its seal)
 *   last digest      pk TENANT#{tenantId}  sk DIGEST   (where the tenant's latest signed digest is, to chain the next)
 *   (the tenants linked since their last digest are marked outside the table: shared/audit/anchor-queue.ts)
 * usage table (pk, sk): when keys were last used (contract §11), written by the authorizer and the token endpoint,
 * which may write nothing else; never sealed and never audited, since nothing in it grants access:
 *   client usage     pk CLIENT#{clientId}  sk USAGE   key_{keyId}: ISO 8601 time the key was last used
 */

export type TableRole = 'main' | 'audit' | 'usage';

/** One table's keys, in the terms both CDK and CreateTable understand. */
export interface TableDefinition {
  role: TableRole;
  partitionKey: string;
  sortKey: string;
  globalIndexes: { name: string; partitionKey: string; sortKey: string }[];
  /** The attribute DynamoDB TTL reads, if the table expires items. */
  timeToLiveAttribute?: string;
  /** The table's stream, if it has one (what its records carry). */
  stream?: 'KEYS_ONLY';
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
  // The linker reads each record again (strongly consistent) rather than trusting an image of it.
  stream: 'KEYS_ONLY',
};

export const USAGE_TABLE: TableDefinition = {
  role: 'usage',
  partitionKey: 'pk',
  sortKey: 'sk',
  globalIndexes: [],
};

export const TABLE_DEFINITIONS: readonly TableDefinition[] = [MAIN_TABLE, AUDIT_TABLE, USAGE_TABLE];

/** The attribute of a client's usage item that holds one key's last use. */
export const usageAttribute = (keyId: string): string => `key_${keyId}`;

/** Key builders: the only place the key formats are spelled. */
export const keys = {
  client: (clientId: string) => ({ pk: `CLIENT#${clientId}`, sk: 'CLIENT' }),
  accessKey: (clientId: string, keyId: string) => ({ pk: `CLIENT#${clientId}`, sk: `KEY#${keyId}` }),
  clientPartition: (clientId: string) => `CLIENT#${clientId}`,
  tenantClients: (tenantId: string) => `TENANT#${tenantId}`,
  tenantClientSort: (createdAt: string, clientId: string) => `${createdAt}#${clientId}`,
  auditPartition: (tenantId: string) => `TENANT#${tenantId}`,
  auditEventSort: (occurredAt: string, eventId: string) => `EVENT#${occurredAt}#${eventId}`,
  auditHead: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: 'HEAD' }),
  auditLastDigest: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: 'DIGEST' }),
  usage: (clientId: string) => ({ pk: `CLIENT#${clientId}`, sk: 'USAGE' }),
} as const;
