/**
 * The console's cryptography, all of it WebCrypto in this tab: an admin access key imported as a non-extractable
 * signing key, client tokens (contract §3) signed with it for each call, and new key pairs generated here so that
 * only their public half is ever sent (contract §5, bring your own key).
 */

import type { TokenSource } from '#sdk/admin-client.ts';
import type { ClientIdentity, PublicJwk } from '#sdk/admin-types.ts';
import { AccessKeyFormatError, accessKeyParts } from '#shared/formats.ts';
import { ALGORITHMS, type Algorithm } from '#shared/model.ts';

/** How WebCrypto names each algorithm of contract §2: to import or generate a key, and to sign with it. */
const WEBCRYPTO: Record<
  Algorithm,
  { key: RsaHashedImportParams | EcKeyImportParams | Algorithm_; sign: AlgorithmIdentifier | EcdsaParams }
> = {
  EdDSA: { key: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  ES256: { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  RS256: { key: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' } },
};
type Algorithm_ = { name: string };

/** An access key, its private half a non-extractable CryptoKey that can sign and do nothing else. */
export interface SigningKey extends ClientIdentity {
  algorithm: Algorithm;
  key: CryptoKey;
}

const base64ToBytes = (value: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(value), (c) => c.charCodeAt(0));

function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const base64url = (bytes: Uint8Array): string => bytesToBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const utf8 = (text: string) => new TextEncoder().encode(text);

/**
 * Parses an access key `{clientId}.{keyId}.{tenantId}.{base64 PKCS#8}` (contract §2) and imports its private key.
 * The messages follow the SDK's; the key is tried as each algorithm of contract §2, and one that fits none is refused.
 */
export async function importAccessKey(accessKey: string): Promise<SigningKey> {
  const { clientId, keyId, tenantId, privateKeyBase64 } = accessKeyParts(accessKey);
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = base64ToBytes(privateKeyBase64);
  } catch {
    // atob refuses a length no base64 has: characters were lost.
    throw new AccessKeyFormatError("The access key's private key part is not standard base64. Was it truncated?");
  }
  try {
    for (const algorithm of ALGORITHMS) {
      try {
        // Not extractable: from here on, script in this page can sign with the key but never read it back.
        const key = await crypto.subtle.importKey('pkcs8', der, WEBCRYPTO[algorithm].key, false, ['sign']);
        return { clientId, keyId, tenantId, algorithm, key };
      } catch {
        // Not this algorithm's key: try the next.
      }
    }
  } finally {
    // The decoded key's bytes are not left for the garbage collector (the pasted string cannot be wiped).
    der.fill(0);
  }
  throw new AccessKeyFormatError("The access key's private key is not an Ed25519, P-256 or RSA PKCS#8 key. Was it truncated?");
}

/** How long each client token the console signs lives: one call's worth, well under the deployment's maximum. */
export const CONSOLE_TOKEN_SECONDS = 60;

/**
 * Signs a fresh client token (contract §3) for every call, living a minute. Its `scope` names only the `keysmith:`
 * scopes the console works with: the audience is the deployment's (often the issuer base, which the token endpoint
 * takes as an assertion's), and a token naming only `keysmith:` scopes is refused there (`invalid_scope`, access
 * tokens never carry them). So a token seen on its way cannot be exchanged for an access token that outlives the
 * admin's key; it is good for the management API alone, for its minute.
 */
export class BrowserTokenSource implements TokenSource {
  readonly identity: ClientIdentity;
  readonly #key: SigningKey;
  readonly #issuer: string;
  readonly #audience: string;
  readonly #scope: string | undefined;

  /**
   * `scope` undefined: the token names no scope and so grants all the client's (sign-in's last question only). It
   * then carries no `jti` either, which the token endpoint requires of an assertion: it cannot be exchanged there.
   */
  constructor(key: SigningKey, issuerBase: string, audience: string, scope?: string) {
    this.#key = key;
    this.identity = { clientId: key.clientId, keyId: key.keyId, tenantId: key.tenantId };
    this.#issuer = `${issuerBase}/v1/clients/${key.clientId}`;
    this.#audience = audience;
    this.#scope = scope;
  }

  async authorizationHeader(): Promise<string> {
    const iat = Math.floor(Date.now() / 1000);
    const header = { alg: this.#key.algorithm, kid: this.#key.keyId, typ: 'JWT' };
    const claims = {
      iss: this.#issuer,
      sub: this.#key.clientId,
      aud: this.#audience,
      iat,
      exp: iat + CONSOLE_TOKEN_SECONDS,
      ...(this.#scope === undefined ? {} : { jti: crypto.randomUUID(), scope: this.#scope }),
    };
    const input = `${base64url(utf8(JSON.stringify(header)))}.${base64url(utf8(JSON.stringify(claims)))}`;
    const signature = await crypto.subtle.sign(WEBCRYPTO[this.#key.algorithm].sign, this.#key.key, utf8(input));
    return `Bearer ${input}.${base64url(new Uint8Array(signature))}`;
  }

  /** Nothing is cached: every call signs its own token. */
  invalidate(): void {}
}

/** A key pair made in this tab: the public JWK to register, the private key as an access key's last part. */
export interface BrowserKeyPair {
  publicKey: PublicJwk;
  /** Standard base64 of the PKCS#8 DER private key (contract §2). A secret: shown once, never sent. */
  privateKeyPkcs8: string;
}

const GENERATE: Record<Algorithm, RsaHashedKeyGenParams | EcKeyGenParams | Algorithm_> = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
};

/** Generates a key pair in WebCrypto; the JWK sent keeps the public members only, whatever the browser exports. */
export async function generateKeyPair(algorithm: Algorithm): Promise<BrowserKeyPair> {
  const pair = (await crypto.subtle.generateKey(GENERATE[algorithm], true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  const publicKey: PublicJwk =
    jwk.kty === 'OKP'
      ? { kty: 'OKP', crv: 'Ed25519', x: String(jwk.x) }
      : jwk.kty === 'EC'
        ? { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) }
        : { kty: 'RSA', n: String(jwk.n), e: String(jwk.e) };
  return { publicKey, privateKeyPkcs8: bytesToBase64(pkcs8) };
}

/** Joins the parts of an access key (contract §2). */
export const formatAccessKey = (identity: ClientIdentity, privateKeyPkcs8: string): string =>
  `${identity.clientId}.${identity.keyId}.${identity.tenantId}.${privateKeyPkcs8}`;
