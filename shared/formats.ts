/**
 * The formats of contract §1's identifiers and of scopes, free of any import: the console's browser bundle reads them
 * too, so it refuses what the API would refuse before anything is sent.
 */
export const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const CLIENT_ID = /^sc_[0-9A-Za-z]{22}$/;
export const KEY_ID = /^[0-9A-Za-z]{8,16}$/;
/** An RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Thrown for an access key that cannot be used; its message never contains the key. */
export class AccessKeyFormatError extends Error {
  override name = 'AccessKeyFormatError';
}

/** The text parts of an access key `{clientId}.{keyId}.{tenantId}.{base64 PKCS#8}` (contract §2). */
export interface AccessKeyParts {
  clientId: string;
  keyId: string;
  tenantId: string;
  /** Standard base64 of the PKCS#8 DER private key: a secret. */
  privateKeyBase64: string;
}

/**
 * Splits an access key into its parts and checks each one's format (the Node SDK and the console both start here).
 * Errors say which part is wrong and never echo the key; what the private key is, is for the caller to find out.
 */
export function accessKeyParts(accessKey: string): AccessKeyParts {
  const parts = accessKey.trim().split('.');
  if (parts.length !== 4)
    throw new AccessKeyFormatError(
      `An access key has four dot-separated parts (clientId.keyId.tenantId.privateKey); this one has ${parts.length}. Was it truncated?`,
    );
  const [clientId, keyId, tenantId, privateKeyBase64] = parts as [string, string, string, string];
  if (!CLIENT_ID.test(clientId)) throw new AccessKeyFormatError('The access key does not start with a valid clientId (sc_...).');
  if (!KEY_ID.test(keyId)) throw new AccessKeyFormatError("The access key's keyId part is malformed.");
  if (!TENANT_ID.test(tenantId)) throw new AccessKeyFormatError("The access key's tenantId part is malformed.");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(privateKeyBase64))
    throw new AccessKeyFormatError("The access key's private key part is not standard base64. Was it truncated?");
  return { clientId, keyId, tenantId, privateKeyBase64 };
}
