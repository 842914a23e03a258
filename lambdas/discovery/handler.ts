/**
 * The public and read-only routes: health, whoami, the OpenAPI document, each client's openid-configuration and
 * JWKS, the token issuer's metadata and JWKS (its public keys, fetched from KMS once per container), and the console
 * (prebuilt beside this bundle by scripts/build-lambdas.ts, or in KEYSMITH_CONSOLE_DIR).
 */
import { fileURLToPath } from 'node:url';
import { apiHandler } from '#lambdas/api-gateway.ts';
import { functionMetrics, tamperReporter } from '#lambdas/metrics.ts';
import { loadConfig } from '#shared/config.ts';
import { consoleFilesFrom } from '#shared/console.ts';
import { createStore, createTokenSigners, issuerKeysOf } from '#shared/wiring.ts';

const config = loadConfig();
const onTamper = tamperReporter(functionMetrics('discovery'));
const signers = createTokenSigners(config);

export const handler = apiHandler('discovery', {
  config,
  store: createStore(config, { onTamper }),
  ...(signers ? { issuerKeys: issuerKeysOf(signers) } : {}),
  console: {
    files: consoleFilesFrom(process.env.KEYSMITH_CONSOLE_DIR || fileURLToPath(new URL('./console/', import.meta.url))),
    audience: config.audiences[0] ?? config.issuerBase,
  },
});
