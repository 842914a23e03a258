/** Weak public keys and the forgeries they allow, for the tests that prove Keysmith refuses them. */
import { createPublicKey, verify } from 'node:crypto';

/** The eight small-order Ed25519 points (with and without the sign bit) and one non-canonical encoding (y = p). */
export const WEAK_ED25519 = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

/** An Ed25519 public JWK of small order (the all-zero encoding, y = 0). */
export const smallOrderJwk = () => ({ kty: 'OKP' as const, crv: 'Ed25519' as const, x: Buffer.alloc(32).toString('base64url') });

/**
 * A token "signed" for the small-order key: R a small-order point and S = 0, which node:crypto (OpenSSL) accepts for
 * many messages. `signingInput(n)` gives the header.payload to try for attempt n; undefined if none of 200 verified.
 */
export function forgeForSmallOrderKey(signingInput: (attempt: number) => string): string | undefined {
  const key = createPublicKey({ key: smallOrderJwk(), format: 'jwk' });
  for (let attempt = 0; attempt < 200; attempt++) {
    const input = signingInput(attempt);
    for (const r of WEAK_ED25519.slice(0, 8)) {
      const signature = Buffer.concat([Buffer.from(r, 'hex'), Buffer.alloc(32)]);
      if (verify(null, Buffer.from(input), key, signature)) return `${input}.${signature.toString('base64url')}`;
    }
  }
  return undefined;
}
