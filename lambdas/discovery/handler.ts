/** The public and read-only routes: health, whoami, and each client's openid-configuration and JWKS. */
import { apiHandler } from '#lambdas/api-gateway.ts';
import { functionMetrics, tamperReporter } from '#lambdas/metrics.ts';
import { loadConfig } from '#shared/config.ts';
import { createStore } from '#shared/wiring.ts';

const config = loadConfig();
const onTamper = tamperReporter(functionMetrics('discovery'));

export const handler = apiHandler('discovery', { config, store: createStore(config, { onTamper }) });
