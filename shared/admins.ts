/**
 * Who may manage what (contract §6). `keysmith:admin` manages its own tenant, `keysmith:platform-admin`
 * every tenant; nobody grants a `keysmith:` scope they lack, and nobody manages a client more privileged
 * than themselves (adding a key to it would hand them its scopes).
 */
import { ForbiddenError, InvalidRequestError } from './errors.ts';
import {
  ADMIN_SCOPE,
  type CallerIdentity,
  KNOWN_PRIVILEGED_SCOPES,
  PLATFORM_ADMIN_SCOPE,
  RESERVED_SCOPE_PREFIX,
  type ServiceClient,
} from './model.ts';

/** Throws unless the caller administers `tenantId`. */
export function assertTenantAdmin(caller: CallerIdentity, tenantId: string): void {
  if (caller.scopes.includes(PLATFORM_ADMIN_SCOPE)) return;
  if (!caller.scopes.includes(ADMIN_SCOPE))
    throw new ForbiddenError('admin_scope_required', `This route needs the ${ADMIN_SCOPE} or ${PLATFORM_ADMIN_SCOPE} scope.`);
  if (caller.tenantId !== tenantId)
    throw new ForbiddenError('tenant_forbidden', `An admin of tenant ${caller.tenantId} cannot manage tenant ${tenantId}.`);
}

const privileged = (scopes: readonly string[]): string[] => scopes.filter((s) => s.startsWith(RESERVED_SCOPE_PREFIX));

/** Throws unless every reserved scope in `scopes` is known and held by the caller. */
export function assertCanGrant(caller: CallerIdentity, scopes: readonly string[]): void {
  for (const scope of privileged(scopes)) {
    if (!KNOWN_PRIVILEGED_SCOPES.includes(scope))
      throw new InvalidRequestError(
        `The keysmith: scope prefix is reserved; ${scope} is not a Keysmith scope.`,
        'reserved_scope',
      );
    if (!caller.scopes.includes(scope))
      throw new ForbiddenError('scope_not_grantable', `Only a caller holding ${scope} may grant it.`);
  }
}

/** Throws unless the caller holds every reserved scope the client has (so managing it grants nothing new). */
export function assertCanManage(caller: CallerIdentity, client: ServiceClient): void {
  const missing = privileged(client.scopes).filter((scope) => !caller.scopes.includes(scope));
  if (missing.length > 0)
    throw new ForbiddenError(
      'client_not_manageable',
      `This client holds ${missing.join(', ')}, which the caller lacks; only a caller holding it may manage the client.`,
    );
}
