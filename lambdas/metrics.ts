/**
 * Keysmith's CloudWatch metrics (Powertools, EMF): one place for the namespace and the counters the stack's
 * alarms watch, so a metric name in code and in the alarm cannot drift apart.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { metricsServiceName } from '#shared/names.ts';
import type { TamperListener } from '#shared/store.ts';
import type { UsageFailureListener } from '#shared/usage.ts';
import { logTamper, logUsageFailure } from '#shared/wiring.ts';

/** The namespace of every Keysmith metric. */
export const METRICS_NAMESPACE = 'Keysmith';
/** Counted once per stored item refused by its seal (dimension `service`); the stack alarms on any. */
export const TAMPER_METRIC = 'TamperDetected';
/** Counted once per last-used write that failed (the authorization it followed went ahead). */
export const USAGE_FAILURE_METRIC = 'LastUsedWriteFailed';

/** The metrics of one function, under the service name the stack's alarms watch (e.g. `keysmith-authorizer`). */
export const functionMetrics = (fn: Parameters<typeof metricsServiceName>[0]): Metrics =>
  new Metrics({ namespace: METRICS_NAMESPACE, serviceName: metricsServiceName(fn) });

/** Logs a refused item with its reason and counts it: a tampered table is something an operator must hear about. */
export function tamperReporter(metrics: Metrics): TamperListener {
  return (report) => {
    logTamper(report);
    const metric = metrics.singleMetric();
    metric.addMetric(TAMPER_METRIC, MetricUnit.Count, 1);
  };
}

/** Logs a failed last-used write and counts it: `lastUsedAt` lags while these go on. */
export function usageFailureReporter(metrics: Metrics): UsageFailureListener {
  return (failure) => {
    logUsageFailure(failure);
    const metric = metrics.singleMetric();
    metric.addMetric(USAGE_FAILURE_METRIC, MetricUnit.Count, 1);
  };
}
