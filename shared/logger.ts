import { Logger } from '@aws-lambda-powertools/logger';

/**
 * Keysmith's structured logger (Powertools). Log reason codes and ids, never a token, an access key or key
 * material. `POWERTOOLS_LOG_LEVEL` sets the level.
 */
export const logger = new Logger({ serviceName: 'keysmith' });

/** The CloudWatch namespace of every Keysmith metric (Powertools EMF). */
export const METRICS_NAMESPACE = 'Keysmith';
/** Counted once per stored item refused by its integrity check (dimension `service`); the stack alarms on any. */
export const TAMPER_METRIC = 'TamperDetected';
/** The Powertools service name of each function, the `service` dimension of its metrics. */
export const metricsServiceName = (fn: 'authorizer' | 'management' | 'discovery'): string => `keysmith-${fn}`;
