/**
 * What the audit function does with each event: links committed audit records into their tenants' chains and publishes their change events
 * (from the audit table's stream, `KEYS_ONLY`, filtered to inserted records), and writes the chains' signed digests
 * (on a schedule, `{ "keysmith": "anchor-pending" }`, and on demand, `{ "keysmith": "anchor", "tenantId"?: T }`).
 *
 * Shared by the Lambda handler (./handler.ts) and `npm start`'s stream poller (local/audit-pipeline.ts).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { functionMetrics } from '#lambdas/metrics.ts';
import type { LinkOutcome, RecordKey } from '#shared/audit/chain.ts';
import type { AnchorOutcome } from '#shared/audit/digests.ts';
import type { createAuditPipeline } from '#shared/audit/wiring.ts';
import { TENANT_ID } from '#shared/ids.ts';
import { logger } from '#shared/logger.ts';
import { AUDIT_LINK_LAG_METRIC } from '#shared/names.ts';

/** The part of a DynamoDB stream record the function reads (the Lambda event source mapping's shape). */
export interface StreamRecord {
  eventName?: string;
  dynamodb?: { Keys?: Record<string, { S?: string }>; SequenceNumber?: string };
}
export type AuditFunctionEvent =
  | { Records: StreamRecord[] }
  | { keysmith: 'anchor-pending' }
  | { keysmith: 'anchor'; tenantId?: string };
export type AuditFunctionResult = { batchItemFailures: { itemIdentifier: string }[] } | { anchored: AnchorOutcome[] };

/** The handler on given parts (the tests and `npm start`'s poller build their own). */
export function auditHandler(pipeline: ReturnType<typeof createAuditPipeline>, metrics = functionMetrics('audit')) {
  const { linker, anchor } = pipeline;
  return async (event: AuditFunctionEvent): Promise<AuditFunctionResult> => {
    if ('Records' in event && Array.isArray(event.Records)) {
      const keys: RecordKey[] = [];
      for (const record of event.Records) {
        const pk = record.dynamodb?.Keys?.pk?.S;
        const sk = record.dynamodb?.Keys?.sk?.S;
        if (record.eventName === 'INSERT' && pk && sk?.startsWith('EVENT#')) keys.push({ pk, sk });
      }
      let outcome: LinkOutcome;
      try {
        outcome = await linker.link(keys);
      } catch (error) {
        // Linking is idempotent: the whole batch is delivered again, in order, from its first record.
        logger.error('audit linking failed; the batch will be retried', {
          error: (error as Error).name,
          message: (error as Error).message,
        });
        const first = event.Records[0]?.dynamodb?.SequenceNumber;
        return { batchItemFailures: first ? [{ itemIdentifier: first }] : [] };
      }
      if (outcome.linked > 0) metrics.addMetric(AUDIT_LINK_LAG_METRIC, MetricUnit.Milliseconds, outcome.maxLagMs);
      metrics.publishStoredMetrics();
      logger.info('audit records linked', {
        linked: outcome.linked,
        relinked: outcome.relinked,
        refused: outcome.refused,
        events: outcome.events.length,
        blockedTenants: outcome.blockedTenants,
      });
      return { batchItemFailures: [] };
    }
    if ('keysmith' in event && event.keysmith === 'anchor-pending') {
      const anchored = await anchor.anchorPending();
      const failed = anchored.filter((a) => a.failed);
      logger.info('audit chains anchored', { tenants: anchored.length, written: anchored.filter((a) => a.written).length });
      for (const { tenantId, failed: reason } of failed) logger.error('anchoring a tenant failed', { tenantId, reason });
      // Failing the invocation makes the Errors alarm see it; the failed tenants' marks stay queued for the next run.
      if (failed.length > 0) throw new Error(`anchoring failed for ${failed.length} of ${anchored.length} tenants`);
      return { anchored };
    }
    if ('keysmith' in event && event.keysmith === 'anchor') {
      if (event.tenantId !== undefined && (typeof event.tenantId !== 'string' || !TENANT_ID.test(event.tenantId)))
        throw new TypeError('tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$');
      return { anchored: event.tenantId ? [await anchor.anchor(event.tenantId)] : await anchor.anchorPending() };
    }
    throw new TypeError(
      'the audit function takes DynamoDB stream batches, { "keysmith": "anchor-pending" } or { "keysmith": "anchor", "tenantId": T }',
    );
  };
}
