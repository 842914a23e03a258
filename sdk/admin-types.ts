/**
 * What the management API (contract §5) takes and returns, as plain TypeScript types: the SDK's published `.d.ts`
 * stands on its own (no zod, nothing from Keysmith's server code). Written from what the API's views return;
 * test/sdk/admin.test.ts checks at compile time that the API's own view types fit them.
 */
import type { JWK } from 'jose';

/** The JWS algorithms an access key may use (contract §2). */
export type Algorithm = 'EdDSA' | 'ES256' | 'RS256';

/** A public key as a JWK, with only public members. */
export type PublicJwk =
  | { kty: 'OKP'; crv: 'Ed25519'; x: string }
  | { kty: 'EC'; crv: 'P-256'; x: string; y: string }
  | { kty: 'RSA'; n: string; e: string };

/** A published public key: the JWK with its `kid` (the keyId), `alg` and `use: "sig"`. */
export type PublishedJwk = PublicJwk & { kid: string; alg: Algorithm; use: 'sig' };

/** One page of a list; pass `nextCursor` as `cursor` to get the next one (absent on the last page). */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** Paging of a list call. */
export interface PageOptions {
  /** Items per page, 1 to 100. @default 20 (the API's) */
  limit?: number;
  /** Where to continue: a previous page's `nextCursor`. */
  cursor?: string;
}

/** `GET /v1/health`. */
export interface Health {
  status: 'ok';
}

/** `GET /v1/whoami`: the authorizer's view of the calling client (contract §4). */
export interface WhoAmI {
  clientId: string;
  tenantId: string;
  keyId: string;
  /** The client's scopes, space-separated (`""` when it has none). */
  scopes: string;
}

/** A service client: a tenant's machine identity. */
export interface ServiceClient {
  /** `sc_` and 22 letters and digits. */
  clientId: string;
  tenantId: string;
  name: string;
  description?: string;
  scopes: string[];
  tags: Record<string, string>;
  /** A disabled client's tokens stop working within the deployment's revocation bound. */
  enabled: boolean;
  /** ISO 8601 UTC. */
  createdAt: string;
  /** ISO 8601 UTC. */
  updatedAt: string;
  /** The latest use of any of its keys, ISO 8601 UTC, accurate to the deployment's window; absent if never used. */
  lastUsedAt?: string;
  /** The `iss` of the client's tokens, `{issuerBase}/v1/clients/{clientId}`. */
  issuer: string;
}

/** What `createClient` takes. */
export interface CreateClientInput {
  /** 1 to 128 characters, no control characters. */
  name: string;
  /** At most 1024 characters. */
  description?: string;
  /** RFC 6749 scope-tokens; `keysmith:` scopes only those the caller holds. @default [] */
  scopes?: string[];
  /** At most 20; keys up to 64, values up to 256 characters. @default {} */
  tags?: Record<string, string>;
}

/** What `updateClient` changes; at least one member. `scopes` and `tags` replace the whole list or map. */
export interface ClientChanges {
  name?: string;
  description?: string;
  scopes?: string[];
  tags?: Record<string, string>;
  enabled?: boolean;
}

/**
 * An access key as the API shows it: the public half only (the private key is never stored).
 * `status` is `expired` once `expiresAt` has passed, and `rolling` for a rolled key in its grace period (it works until
 * `expiresAt`).
 */
export interface AccessKey {
  keyId: string;
  clientId: string;
  algorithm: Algorithm;
  publicKey: PublishedJwk;
  /** `generated`: Keysmith made the pair and handed out the private key once; `registered`: the caller brought its own. */
  origin: 'generated' | 'registered';
  status: 'active' | 'rolling' | 'revoked' | 'expired';
  /** ISO 8601 UTC. */
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
  /** When it was rolled; with `replacedBy`, the key it was rolled to. */
  rolledAt?: string;
  replacedBy?: string;
  /** When it last signed an accepted token, ISO 8601 UTC, accurate to the deployment's window; absent if never used. */
  lastUsedAt?: string;
}

/**
 * The answer to `createKey`. `accessKey`, `{clientId}.{keyId}.{tenantId}.{privateKey}`, is there only when Keysmith
 * generated the key, and only in this answer: store it as a secret at once.
 */
export interface CreatedAccessKey extends AccessKey {
  accessKey?: string;
}

/** What `createKey` takes: nothing (a generated EdDSA key), an algorithm, or your own public key. */
export interface CreateKeyInput {
  /** The algorithm of a generated key; leave it out with `publicKey` (it follows from the key). @default 'EdDSA' */
  algorithm?: Algorithm;
  /** When the key stops working: a future time. */
  expiresAt?: Date | string;
  /**
   * Register this public JWK (e.g. jose `exportJWK(publicKey)`) instead of generating a key; no access key comes back.
   * A JWK with private members is refused before anything is sent.
   */
  publicKey?: JWK;
}

/**
 * What `rollKey` takes: what `createKey` takes (the new key; its algorithm is the old key's by default), and how long
 * the old key keeps working.
 */
export interface RollKeyInput extends CreateKeyInput {
  /** 0 to 2592000 (30 days); never past the old key's own expiry. @default 86400 */
  gracePeriodSeconds?: number;
}

/** What audit records name as happened. */
export type AuditAction =
  | 'client.created'
  | 'client.updated'
  | 'client.deleted'
  | 'access_key.created'
  | 'access_key.revoked'
  | 'access_key.rolled';

/**
 * Who made a change. `platform_admin` is what a tenant admin sees for a change a platform admin made (the
 * operator's identity withheld).
 */
export type AuditActor =
  | { type: 'client'; clientId: string; tenantId: string; keyId: string; scopes: string[] }
  | { type: 'system'; name: string }
  | { type: 'platform_admin' };

/** A decrypted audit record. */
export interface DecryptedAuditEvent {
  eventId: string;
  tenantId: string;
  /** The record's place in the tenant's chain, from 1, once linked (a record of the last second may not have one yet). */
  seq?: number;
  /** ISO 8601 UTC. */
  occurredAt: string;
  action: AuditAction;
  actor: AuditActor;
  target: { clientId: string; keyId?: string };
  /** What changed (never a secret). */
  details: Record<string, unknown>;
  requestId?: string;
  /** Absent in a tenant admin's view of a platform admin's change. */
  sourceIp?: string;
  integrity?: never;
}

/** A record whose content failed authentication: tampered with or damaged; run `keysmith audit verify`. */
export interface UnreadableAuditEvent {
  eventId: string;
  tenantId: string;
  seq?: number;
  occurredAt: string;
  action: string;
  integrity: 'failed';
}

/** An audit record as listed; check `integrity === 'failed'` before reading `actor`, `target` or `details`. */
export type AuditEvent = DecryptedAuditEvent | UnreadableAuditEvent;

/** Which audit records `listAuditEvents` returns (newest first). */
export interface AuditEventQuery extends PageOptions {
  /** Records at or after this time. */
  from?: Date | string;
  /** Records at or before this time. */
  to?: Date | string;
  /** Only records of this action. */
  action?: AuditAction;
}

/** A client's OpenID discovery document. */
export interface OpenIdConfiguration {
  /** The `iss` of the client's tokens. */
  issuer: string;
  jwks_uri: string;
  subject_types_supported: string[];
  id_token_signing_alg_values_supported: Algorithm[];
  token_endpoint_auth_signing_alg_values_supported: Algorithm[];
  claims_supported: string[];
  [member: string]: unknown;
}

/** A client's JWKS: its active public keys. */
export interface Jwks {
  keys: PublishedJwk[];
}

/** The service client an access key belongs to (no secret in it). */
export interface ClientIdentity {
  clientId: string;
  keyId: string;
  tenantId: string;
}
