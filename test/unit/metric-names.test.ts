/** The tamper metric each function emits carries the `service` dimension the stack's alarm watches. */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { KEYSMITH_FUNCTIONS } from '#cdk/lambda-code.ts';
import { functionMetrics, TAMPER_METRIC } from '#lambdas/metrics.ts';
import { metricsServiceName } from '#shared/names.ts';

describe('function metrics', () => {
  it.each(KEYSMITH_FUNCTIONS)('%s emits under the alarm dimension', (fn) => {
    const metrics = functionMetrics(fn);
    metrics.addMetric(TAMPER_METRIC, MetricUnit.Count, 1);
    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown>;
    expect(emf.service).toBe(metricsServiceName(fn));
    expect(emf.service).toBe(`keysmith-${fn}`);
  });
});
