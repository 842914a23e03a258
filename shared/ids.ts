import { randomBytes } from 'node:crypto';

export { CLIENT_ID, KEY_ID, SCOPE_TOKEN, TENANT_ID } from './formats.ts';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `length` uniformly random base62 characters (rejection sampling: no modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: bytes at or above it would bias the first characters.
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A new clientId: `sc_` and 22 base62 characters (about 131 bits of randomness). */
export const newClientId = (): string => `sc_${randomBase62(22)}`;

/** A new keyId: 12 base62 characters (about 71 bits), unique within its client (the write checks it). */
export const newKeyId = (): string => randomBase62(12);

/** An audit event id. */
export const EVENT_ID = /^ev_[0-9A-Za-z]{22}$/;

/** A new audit event id. */
export const newEventId = (): string => `ev_${randomBase62(22)}`;
