import { Logger } from '@aws-lambda-powertools/logger';

/**
 * Keysmith's structured logger (Powertools). Log reason codes and ids, never a token, an access key or key
 * material. `POWERTOOLS_LOG_LEVEL` sets the level.
 */
export const logger = new Logger({ serviceName: 'keysmith' });

export { METRICS_NAMESPACE, metricsServiceName, TAMPER_METRIC } from './names.ts';
