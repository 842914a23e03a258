/**
 * The audit function (see ./run.ts): links audit records from the audit table's stream, publishes change events,
 * writes digests. It may read and link audit records, and nothing in the main table: it cannot change a client or a key.
 */
import { functionMetrics, tamperReporter } from '#lambdas/metrics.ts';
import { createAuditPipeline } from '#shared/audit/wiring.ts';
import { loadConfig } from '#shared/config.ts';
import { auditHandler } from './run.ts';

const metrics = functionMetrics('audit');
export const handler = auditHandler(createAuditPipeline(loadConfig(), { onTamper: tamperReporter(metrics) }), metrics);
