/** A `fetch` that sends a client token with every request. */
import { TokenProvider, type TokenProviderOptions } from './token-provider.ts';

/** Options of {@link createAuthorizedFetch}. */
export interface AuthorizedFetchOptions {
  /** The fetch to wrap. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * Wraps `fetch` so every request carries `Authorization: Bearer <token>` from a {@link TokenProvider}
 * (built from the options when not given one). An `Authorization` header set by the caller is replaced.
 * After a 401 the cached token is dropped, so the next request signs a new one.
 */
export function createAuthorizedFetch(
  provider: TokenProvider | TokenProviderOptions,
  { fetch: baseFetch = globalThis.fetch }: AuthorizedFetchOptions = {},
): typeof fetch {
  const tokens = provider instanceof TokenProvider ? provider : new TokenProvider(provider);
  return async (input, init) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('authorization', await tokens.authorizationHeader());
    const response = await baseFetch(input, { ...init, headers });
    if (response.status === 401) tokens.invalidate();
    return response;
  };
}
