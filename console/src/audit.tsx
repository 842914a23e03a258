/** A tenant's audit events, newest first: filtered by time and action, paged, each one's details on demand. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { AuditActor, AuditEvent, AuditEventQuery } from '#sdk/admin-types.ts';
import { AUDIT_ACTIONS, type AuditAction } from '#shared/model.ts';
import type { Session } from './api.ts';
import { describedBy, ErrorLine, Field, href, Pager, Time, useLoad, usePager } from './ui.tsx';

const PAGE_SIZE = 25;

interface Filters {
  from: string;
  to: string;
  action: AuditAction | '';
}

const NO_FILTERS: Filters = { from: '', to: '', action: '' };

function actorOf(actor: AuditActor): string {
  if (actor.type === 'client') return `${actor.clientId} (key ${actor.keyId}, tenant ${actor.tenantId})`;
  if (actor.type === 'system') return `system: ${actor.name}`;
  return 'a platform admin';
}

/** `datetime-local` values are the browser's local time; the API takes instants. */
const instant = (local: string): string | undefined => (local ? new Date(local).toISOString() : undefined);

function queryOf(filters: Filters, cursor: string | undefined): AuditEventQuery {
  const query: AuditEventQuery = { limit: PAGE_SIZE };
  const from = instant(filters.from);
  const to = instant(filters.to);
  if (from) query.from = from;
  if (to) query.to = to;
  if (filters.action) query.action = filters.action;
  if (cursor) query.cursor = cursor;
  return query;
}

function EventRow({ event, tenantId }: { event: AuditEvent; tenantId: string }) {
  if (event.integrity === 'failed')
    return (
      <tr class="unreadable">
        <td>
          <Time value={event.occurredAt} />
        </td>
        <td>{event.action}</td>
        <td colSpan={3}>
          Unreadable: this record failed authentication (tampered with or damaged). Run <code>keysmith audit verify</code>.
        </td>
      </tr>
    );
  const { target } = event;
  return (
    <tr data-action={event.action}>
      <td>
        <Time value={event.occurredAt} />
      </td>
      <td>
        <code>{event.action}</code>
      </td>
      <td>
        <a href={href('tenants', tenantId, 'clients', target.clientId)}>{target.clientId}</a>
        {target.keyId && <span> key {target.keyId}</span>}
      </td>
      <td>{actorOf(event.actor)}</td>
      <td>
        <details>
          <summary>Details</summary>
          <pre>{JSON.stringify({ ...event.details, requestId: event.requestId, sourceIp: event.sourceIp }, null, 2)}</pre>
        </details>
      </td>
    </tr>
  );
}

export function Audit({ session, tenantId }: { session: Session; tenantId: string }) {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [filterError, setFilterError] = useState<string>();
  const pager = usePager(`${tenantId} ${JSON.stringify(filters)}`);
  const page = useLoad(
    () => session.api.listAuditEvents(tenantId, queryOf(filters, pager.cursor)),
    [tenantId, filters, pager.cursor],
  );

  function apply(event: JSX.TargetedSubmitEvent<HTMLFormElement>) {
    event.preventDefault();
    if (draft.from && draft.to && new Date(draft.from) > new Date(draft.to)) {
      setFilterError('“From” is after “to”: no record could match.');
      return;
    }
    setFilterError(undefined);
    setFilters(draft);
  }

  return (
    <>
      <h1>
        Audit events <span class="muted">of {tenantId}</span>
      </h1>
      <form onSubmit={apply} class="filters" aria-label="Filter audit events" noValidate>
        <Field id="audit-from" label="From (your local time)">
          <input
            type="datetime-local"
            {...describedBy('audit-from', undefined)}
            value={draft.from}
            onInput={(e) => setDraft({ ...draft, from: e.currentTarget.value })}
          />
        </Field>
        <Field id="audit-to" label="To (your local time)">
          <input
            type="datetime-local"
            {...describedBy('audit-to', undefined)}
            value={draft.to}
            onInput={(e) => setDraft({ ...draft, to: e.currentTarget.value })}
          />
        </Field>
        <Field id="audit-action" label="Action">
          <select
            id="audit-action"
            value={draft.action}
            onChange={(e) => setDraft({ ...draft, action: e.currentTarget.value as AuditAction | '' })}
          >
            <option value="">Any action</option>
            {AUDIT_ACTIONS.map((action) => (
              <option key={action} value={action}>
                {action}
              </option>
            ))}
          </select>
        </Field>
        <div class="actions">
          <button type="submit">Apply filters</button>
          <button
            type="button"
            onClick={() => {
              setDraft(NO_FILTERS);
              setFilters(NO_FILTERS);
              setFilterError(undefined);
            }}
          >
            Clear
          </button>
          <button type="button" onClick={page.reload}>
            Refresh
          </button>
        </div>
        <ErrorLine error={filterError} />
      </form>
      <ErrorLine error={page.error} />
      <div class="table-wrap">
        <table>
          <caption>Newest first{page.loading ? ' (loading…)' : ''}</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">By</th>
              <th scope="col">
                <span class="visually-hidden">Details</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {page.data?.items.map((event) => (
              <EventRow key={event.eventId} event={event} tenantId={tenantId} />
            ))}
            {page.data?.items.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No audit events match.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} page={page.data} label="Audit events" />
    </>
  );
}
