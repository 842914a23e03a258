/** The token endpoint (contract §9): Keysmith access tokens for assertions signed with an access key. */
import { apiHandler } from '#lambdas/api-gateway.ts';
import { functionMetrics, tamperReporter } from '#lambdas/metrics.ts';
import { loadConfig } from '#shared/config.ts';
import { createTokenIssuer } from '#shared/wiring.ts';

const config = loadConfig();
const tokenIssuer = createTokenIssuer(config, { onTamper: tamperReporter(functionMetrics('token')) });

export const handler = apiHandler('token', { config, tokenIssuer });
