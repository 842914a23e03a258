/** The token endpoint (contract §9): Keysmith access tokens for assertions signed with an access key. */
import { apiHandler } from '#lambdas/api-gateway.ts';
import { functionMetrics, tamperReporter, usageFailureReporter } from '#lambdas/metrics.ts';
import { loadConfig } from '#shared/config.ts';
import { createTokenIssuer, createUsageRecorder } from '#shared/wiring.ts';

const config = loadConfig();
const metrics = functionMetrics('token');
/** Records the key of each accepted assertion (contract §11); exported so the local server and tests can wait for it. */
export const usage = createUsageRecorder(config, { onUsageFailure: usageFailureReporter(metrics) });
const tokenIssuer = createTokenIssuer(config, { onTamper: tamperReporter(metrics), usage });

export const handler = apiHandler('token', { config, tokenIssuer });
