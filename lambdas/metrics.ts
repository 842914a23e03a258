/**
 * Keysmith's CloudWatch metrics (Powertools, EMF): one place for the namespace and the counters the stack's
 * alarms watch, so a metric name in code and in the alarm cannot drift apart.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { metricsServiceName } from '#shared/names.ts';
import type { TamperListener } from '#shared/store.ts';
import { logTamper } from '#shared/wiring.ts';

/** The namespace of every Keysmith metric. */
export const METRICS_NAMESPACE = 'Keysmith';
/** Counted once per stored item refused by its seal (dimension `service`); the stack alarms on any. */
export const TAMPER_METRIC = 'TamperDetected';

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
