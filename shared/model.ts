/** The product's nouns, as the domain code sees them (no DynamoDB or HTTP shapes here). */

/** The JWS algorithms an access key may use (contract §2). */
export const ALGORITHMS = ['EdDSA', 'ES256', 'RS256'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** A public key as a JWK, with only public members. */
export type PublicJwk =
  | { kty: 'OKP'; crv: 'Ed25519'; x: string }
  | { kty: 'EC'; crv: 'P-256'; x: string; y: string }
  | { kty: 'RSA'; n: string; e: string };

/** A tenant's machine identity. */
export interface ServiceClient {
  clientId: string;
  tenantId: string;
  name: string;
  description?: string;
  scopes: string[];
  tags: Record<string, string>;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  /** Incremented on every change to the client or its keys; guards optimistic writes. */
  version: number;
  /**
   * The eventId of the audit record of the change that wrote this state (sealed with it), so `audit verify` can tell
   * a cut chain from what the clients' own seals say.
   */
  auditEventId: string;
}

/** What a key item stores: a key is `active` until revoked (expiry and rolling are read from its times). */
export type AccessKeyStatus = 'active' | 'revoked';

/** What a key view shows (contract §10): `rolling` is a rolled key in its grace period. */
export type KeyViewStatus = 'active' | 'rolling' | 'revoked' | 'expired';

/** The public half of an access key; the private half is never stored. */
export interface AccessKey {
  keyId: string;
  clientId: string;
  tenantId: string;
  algorithm: Algorithm;
  publicKey: PublicJwk;
  /** `generated`: Keysmith made the pair and handed out the private key once; `registered`: the caller brought its own. */
  origin: 'generated' | 'registered';
  status: AccessKeyStatus;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
  /** When the key was rolled (contract §10); its `expiresAt` is then the end of its grace period. */
  rolledAt?: string;
  /** The keyId of the key it was rolled to. */
  replacedBy?: string;
  /** The client's version when this key's item was last written; part of what the client's seal names. */
  sealedVersion: number;
}

/** A client with all its keys: what the authorizer and the JWKS route read in one request. */
export interface ClientWithKeys {
  client: ServiceClient;
  keys: AccessKey[];
}

/** Whether a key can sign tokens now: not revoked and not expired. */
export function isKeyActive(key: AccessKey, nowMs: number): boolean {
  return key.status === 'active' && (key.expiresAt === undefined || Date.parse(key.expiresAt) > nowMs);
}

/**
 * Keys in a grace period a client may have at once. They do not count toward the 5-key limit (contract §10), but they
 * verify: without a bound of their own, repeated rolls would keep dozens of working keys per client for 30 days.
 */
export const MAX_ROLLING_KEYS = 5;

/** The grace period of a roll (contract §10), in seconds: when none is given, and the longest. */
export const ROLL_GRACE_SECONDS = { default: 86_400, max: 2_592_000 } as const;

/** Whether a key counts toward the 5-key limit: it can sign and is not in a grace period (contract §10). */
export function countsTowardKeyLimit(key: AccessKey, nowMs: number): boolean {
  return isKeyActive(key, nowMs) && key.rolledAt === undefined;
}

/** A key's status as its views show it. */
export function keyStatus(key: AccessKey, nowMs: number): KeyViewStatus {
  if (key.status === 'revoked') return 'revoked';
  if (!isKeyActive(key, nowMs)) return 'expired';
  return key.rolledAt === undefined ? 'active' : 'rolling';
}

/**
 * Whether a client can manage every tenant right now: enabled, holding the platform-admin scope, with a key that can
 * sign and is not in a grace period (a rolled key runs out by itself: it does not keep anyone able to manage Keysmith).
 */
export function isEffectivePlatformAdmin({ client, keys }: ClientWithKeys, nowMs: number): boolean {
  return client.enabled && client.scopes.includes(PLATFORM_ADMIN_SCOPE) && keys.some((key) => countsTowardKeyLimit(key, nowMs));
}

/** The identity the authorizer hands to the protected API (contract §4). */
export interface CallerIdentity {
  clientId: string;
  tenantId: string;
  keyId: string;
  scopes: string[];
}

/**
 * Who made a change, as an audit record names it. `platform_admin` appears only in a tenant admin's view of a
 * change a platform admin made (its identity withheld); it is never stored.
 */
export type Actor = ({ type: 'client' } & CallerIdentity) | { type: 'system'; name: string } | { type: 'platform_admin' };

/** The privileged scopes of contract §6. */
export const ADMIN_SCOPE = 'keysmith:admin';
export const PLATFORM_ADMIN_SCOPE = 'keysmith:platform-admin';
export const RESERVED_SCOPE_PREFIX = 'keysmith:';
export const KNOWN_PRIVILEGED_SCOPES: readonly string[] = [ADMIN_SCOPE, PLATFORM_ADMIN_SCOPE];

/** What happened, as audit records name it (contract §6). */
export const AUDIT_ACTIONS = [
  'client.created',
  'client.updated',
  'client.deleted',
  'access_key.created',
  'access_key.revoked',
  'access_key.rolled',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
