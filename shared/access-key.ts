import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { InvalidRequestError } from './errors.ts';
import { AccessKeyFormatError, accessKeyParts } from './formats.ts';
import type { Algorithm, PublicJwk } from './model.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A freshly generated pair: the private key goes to the caller once, the public JWK to DynamoDB. */
export interface GeneratedKeyPair {
  /** Standard base64 of the PKCS#8 DER private key (contract §2). */
  privateKeyPkcs8: string;
  publicKey: PublicJwk;
}

/** Generates a key pair for an algorithm of contract §2 (RSA: 2048 bits). */
export async function generateAccessKeyPair(algorithm: Algorithm): Promise<GeneratedKeyPair> {
  const pair =
    algorithm === 'EdDSA'
      ? await generateKeyPairAsync('ed25519')
      : algorithm === 'ES256'
        ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
        : await generateKeyPairAsync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  return {
    privateKeyPkcs8: pair.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    publicKey: toPublicJwk(pair.publicKey),
  };
}

/** The parts of an access key `{clientId}.{keyId}.{tenantId}.{privateKey}`. */
export interface ParsedAccessKey {
  clientId: string;
  keyId: string;
  tenantId: string;
  privateKey: KeyObject;
  algorithm: Algorithm;
}

/** Joins the parts of an access key (contract §2). */
export function formatAccessKey(clientId: string, keyId: string, tenantId: string, privateKeyPkcs8: string): string {
  return `${clientId}.${keyId}.${tenantId}.${privateKeyPkcs8}`;
}

export { AccessKeyFormatError };

/**
 * Parses an access key and loads its private key. Errors say which part is wrong and never echo the key.
 */
export function parseAccessKey(accessKey: string): ParsedAccessKey {
  const { clientId, keyId, tenantId, privateKeyBase64 } = accessKeyParts(accessKey);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(privateKeyBase64, 'base64'), format: 'der', type: 'pkcs8' });
  } catch {
    throw new AccessKeyFormatError("The access key's private key part is not a PKCS#8 key. Was it truncated?");
  }
  return { clientId, keyId, tenantId, privateKey, algorithm: algorithmOfKey(privateKey) };
}

/** The JWS algorithm that follows from a key (contract §2), or an error for a key Keysmith does not accept. */
export function algorithmOfKey(key: KeyObject): Algorithm {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256';
  throw new AccessKeyFormatError('Keys must be Ed25519, P-256 or RSA of at least 2048 bits.');
}

const ED25519_P = 2n ** 255n - 19n;
/**
 * The y coordinates of Ed25519's eight small-order points (orders 1, 2, 4 and 8; the sign bit picks x). A public
 * key of small order accepts forged signatures (R a small-order point, S = 0) for a large share of messages.
 */
const ED25519_SMALL_ORDER_Y = new Set([
  0n,
  1n,
  ED25519_P - 1n,
  2707385501144840649318225287225658788936804267575313519463743609750303402022n,
  55188659117513257062467267217118295137698188065244968500265048394206261417927n,
]);
const RSA_MAX_BITS = 4096;

/**
 * Why a public key must not be trusted, or undefined when it is fine: an Ed25519 point of small order or not
 * canonically encoded; an RSA key whose exponent is not 65537 (e = 1 makes any padded hash a valid signature)
 * or whose modulus is outside 2048–4096 bits (larger ones make every verification slow). Generated keys always
 * pass; this guards keys that callers bring, and keys already stored.
 */
export function publicKeyWeakness(key: KeyObject): string | undefined {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const x = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    if (x.length !== 32) return 'an Ed25519 public key is 32 bytes';
    let y = 0n;
    for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(x[i] as number);
    y &= (1n << 255n) - 1n; // the top bit is the sign of x
    if (y >= ED25519_P) return 'the Ed25519 point is not canonically encoded';
    if (ED25519_SMALL_ORDER_Y.has(y)) return 'the Ed25519 point has small order';
  }
  if (publicKey.asymmetricKeyType === 'rsa') {
    const { publicExponent, modulusLength = 0 } = publicKey.asymmetricKeyDetails ?? {};
    if (publicExponent !== 65537n) return 'the RSA public exponent must be 65537';
    if (modulusLength < 2048 || modulusLength > RSA_MAX_BITS) return `the RSA modulus must be 2048 to ${RSA_MAX_BITS} bits`;
  }
  return undefined;
}

/** The public JWK of a key, with only the public members Keysmith stores. */
export function toPublicJwk(key: KeyObject): PublicJwk {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && jwk.x) return { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && jwk.x && jwk.y) return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
  if (jwk.kty === 'RSA' && jwk.n && jwk.e) return { kty: 'RSA', n: jwk.n, e: jwk.e };
  throw new AccessKeyFormatError('Keys must be Ed25519, P-256 or RSA of at least 2048 bits.');
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * Validates a caller's public JWK (bring your own key) and returns it normalized, with the algorithm it implies.
 * A JWK holding private members is refused without echoing any of it.
 */
export function importPublicJwk(input: Record<string, unknown>): { publicKey: PublicJwk; algorithm: Algorithm } {
  if (PRIVATE_JWK_MEMBERS.some((member) => member in input))
    throw new InvalidRequestError(
      'publicKey holds private key material. Send only the public JWK; the private key must never leave your machine.',
      'private_key_material',
    );
  let key: KeyObject;
  try {
    key = createPublicKey({ key: input as any, format: 'jwk' });
  } catch {
    throw new InvalidRequestError('publicKey is not a valid public JWK.', 'invalid_public_key');
  }
  let algorithm: Algorithm;
  try {
    algorithm = algorithmOfKey(key);
  } catch {
    throw new InvalidRequestError(
      'publicKey must be an Ed25519 (OKP), P-256 (EC) or RSA (at least 2048 bits) key.',
      'unsupported_key_type',
    );
  }
  const weakness = publicKeyWeakness(key);
  if (weakness) throw new InvalidRequestError(`publicKey is not a safe signing key: ${weakness}.`, 'weak_public_key');
  if (input.alg !== undefined && input.alg !== algorithm)
    throw new InvalidRequestError(`publicKey.alg must be ${algorithm} for this key.`, 'algorithm_mismatch');
  if (input.use !== undefined && input.use !== 'sig') throw new InvalidRequestError('publicKey.use must be "sig".');
  return { publicKey: toPublicJwk(key), algorithm };
}

/** Loads a stored public JWK as a KeyObject (done once per key and cached by the authorizer). */
export function publicKeyObject(jwk: PublicJwk): KeyObject {
  return createPublicKey({ key: jwk, format: 'jwk' });
}
