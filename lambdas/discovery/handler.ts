/**
 * The public and read-only routes: health, whoami, the OpenAPI document, each client's openid-configuration and
 * JWKS, and the token issuer's metadata and JWKS (its public keys, fetched from KMS once per container).
 */
import { apiHandler } from '#lambdas/api-gateway.ts';
import { functionMetrics, tamperReporter } from '#lambdas/metrics.ts';
import { loadConfig } from '#shared/config.ts';
import { createStore, createTokenSigners, issuerKeysOf } from '#shared/wiring.ts';

const config = loadConfig();
const onTamper = tamperReporter(functionMetrics('discovery'));
const signers = createTokenSigners(config);

export const handler = apiHandler('discovery', {
  config,
  store: createStore(config, { onTamper }),
  ...(signers ? { issuerKeys: issuerKeysOf(signers) } : {}),
});
