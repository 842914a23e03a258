/**
 * Change events (contract §12): every linked audit record, published at least once and in order per tenant, naming
 * only identifiers (no names, descriptions, scopes, tags or key material). On an EventBridge bus in AWS; locally
 * appended as one JSON object per line to `.keysmith/events.jsonl`.
 */
import { appendFile } from 'node:fs/promises';
import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { AuditAction, RecordContent } from './log.ts';

/** One change event, as contract §12 fixes it. */
export interface ChangeEvent {
  source: 'keysmith';
  'detail-type': AuditAction;
  detail: { tenantId: string; eventId: string; seq: number; occurredAt: string; clientId: string; keyId?: string };
}

/** The event of a linked record: identifiers only, whatever else its content holds. */
export function changeEventOf(content: RecordContent, seq: number): ChangeEvent {
  const { tenantId, eventId, occurredAt, action, target } = content;
  return {
    source: 'keysmith',
    'detail-type': action,
    detail: {
      tenantId,
      eventId,
      seq,
      occurredAt,
      clientId: target.clientId,
      ...(target.keyId !== undefined ? { keyId: target.keyId } : {}),
    },
  };
}

/** Where events go. `publish` resolves once every event is accepted, in the given order, or throws. */
export interface EventSink {
  publish(events: readonly ChangeEvent[]): Promise<void>;
}

/** Appends events to a JSON Lines file (created readable by its owner only). */
export class FileEventSink implements EventSink {
  constructor(readonly file: string) {}

  async publish(events: readonly ChangeEvent[]): Promise<void> {
    if (events.length === 0) return;
    await appendFile(this.file, events.map((event) => `${JSON.stringify(event)}\n`).join(''), { mode: 0o600 });
  }
}

/**
 * Puts events on an EventBridge bus, ten per call (its limit), one call after the other so that a tenant's events
 * arrive in order. Any entry refused fails the call: the caller retries the whole batch (at least once).
 */
export class EventBridgeSink implements EventSink {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly busName: string,
  ) {}

  async publish(events: readonly ChangeEvent[]): Promise<void> {
    for (let i = 0; i < events.length; i += 10) {
      const answer = await this.client.send(
        new PutEventsCommand({
          Entries: events.slice(i, i + 10).map((event) => ({
            EventBusName: this.busName,
            Source: event.source,
            DetailType: event['detail-type'],
            Detail: JSON.stringify(event.detail),
            Time: new Date(event.detail.occurredAt),
          })),
        }),
      );
      if ((answer.FailedEntryCount ?? 0) > 0) {
        const failed = answer.Entries?.find((entry) => entry.ErrorCode);
        throw new Error(
          `EventBridge refused ${answer.FailedEntryCount} change events (${failed?.ErrorCode ?? 'unknown'}); retrying the batch`,
        );
      }
    }
  }
}
