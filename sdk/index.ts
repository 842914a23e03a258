/** `@keysmith/sdk`: what a service client and a SaaS backend import (contract §13). Needs no AWS SDK: jose only. */
export { AccessKeyFormatError, type ParsedAccessKey } from '#shared/access-key.ts';
export {
  type AccessTokenRequestOptions,
  type IssuedAccessToken,
  requestAccessToken,
  TokenEndpointError,
} from './access-token.ts';
export {
  AccessTokenRejectedError,
  AccessTokenVerifier,
  type AccessTokenVerifierOptions,
  type VerifiedAccessTokenClaims,
} from './access-token-verifier.ts';
export {
  DEFAULT_TIMEOUT_MS,
  KeysmithAdmin,
  type KeysmithAdminAccessKey,
  type KeysmithAdminConnection,
  type KeysmithAdminOptions,
  type KeysmithAdminTokenProvider,
} from './admin.ts';
export { AdminClient, type TokenSource } from './admin-client.ts';
export type {
  AccessKey,
  Algorithm,
  AuditAction,
  AuditActor,
  AuditEvent,
  AuditEventQuery,
  ClientChanges,
  CreateClientInput,
  CreatedAccessKey,
  CreateKeyInput,
  DecryptedAuditEvent,
  Health,
  Jwks,
  OpenIdConfiguration,
  Page,
  PageOptions,
  PublicJwk,
  PublishedJwk,
  RollKeyInput,
  ServiceClient,
  UnreadableAuditEvent,
  WhoAmI,
} from './admin-types.ts';
export {
  KeysmithApiError,
  type KeysmithApiErrorDetails,
  KeysmithConnectionError,
  type KeysmithProblemCode,
  type ProblemFieldError,
} from './errors.ts';
export { type AuthorizedFetchOptions, createAuthorizedFetch } from './fetch.ts';
export { DEFAULT_LIFETIME_SECONDS, type MintedToken, type MintOptions, mintToken, signToken } from './token.ts';
export { type ClientIdentity, TokenProvider, type TokenProviderOptions } from './token-provider.ts';
export {
  bearerToken,
  ClientTokenVerifier,
  type ClientTokenVerifierOptions,
  type DenyReason,
  KeyDiscoveryError,
  TokenRejectedError,
  type VerifiedClientToken,
} from './verifier.ts';
