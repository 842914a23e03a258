/**
 * The formats of contract §1's identifiers and of scopes, free of any import: the console's browser bundle reads them
 * too, so it refuses what the API would refuse before anything is sent.
 */
export const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const CLIENT_ID = /^sc_[0-9A-Za-z]{22}$/;
export const KEY_ID = /^[0-9A-Za-z]{8,16}$/;
/** An RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
