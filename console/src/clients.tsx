/** A tenant's service clients: the list (newest first, paged), a form to create one, and one client's page. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { ClientChanges, ServiceClient } from '#sdk/admin-types.ts';
import { fieldErrors, type Session } from './api.ts';
import { Keys } from './keys.tsx';
import { describedBy, ErrorLine, Field, href, Pager, Time, useLoad, usePager } from './ui.tsx';

const PAGE_SIZE = 20;
const FIELDS = ['name', 'description', 'scopes', 'tags', 'enabled'] as const;

interface ClientFormValues {
  name: string;
  description: string;
  scopes: string;
  tags: string;
  enabled: boolean;
}

const valuesOf = (client?: ServiceClient): ClientFormValues => ({
  name: client?.name ?? '',
  description: client?.description ?? '',
  scopes: client?.scopes.join(' ') ?? '',
  tags: Object.entries(client?.tags ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join('\n'),
  enabled: client?.enabled ?? true,
});

/** Tags as typed, one `key=value` per line; a line without `=` is the form's own error, before anything is sent. */
function parseTags(text: string): Record<string, string> | string {
  const tags: Record<string, string> = {};
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '') continue;
    const at = line.indexOf('=');
    if (at <= 0) return `Write each tag as key=value on its own line ("${line.slice(0, 40)}" has no key=).`;
    tags[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return tags;
}

/** The fields that differ from `before` (all of them for a new client), as the API takes them. */
function changesOf(values: ClientFormValues, before?: ServiceClient): ClientChanges | string {
  const tags = parseTags(values.tags);
  if (typeof tags === 'string') return tags;
  const scopes = values.scopes.split(/\s+/).filter((s) => s.length > 0);
  const old = valuesOf(before);
  const changes: ClientChanges = {};
  if (!before || values.name !== old.name) changes.name = values.name;
  if (values.description !== old.description) changes.description = values.description;
  if (!before ? scopes.length > 0 : scopes.join(' ') !== old.scopes) changes.scopes = scopes;
  if (!before ? Object.keys(tags).length > 0 : values.tags.trim() !== old.tags) changes.tags = tags;
  if (before && values.enabled !== old.enabled) changes.enabled = values.enabled;
  return changes;
}

function ClientForm({
  idPrefix,
  client,
  submitLabel,
  onSubmit,
}: {
  idPrefix: string;
  client?: ServiceClient;
  submitLabel: string;
  onSubmit: (changes: ClientChanges) => Promise<void>;
}) {
  const [values, setValues] = useState<ClientFormValues>(() => valuesOf(client));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const set = (name: keyof ClientFormValues, value: string | boolean) => {
    setValues((v) => ({ ...v, [name]: value }));
    setSaved(false);
  };
  const id = (name: string) => `${idPrefix}-${name}`;

  async function submit(event: JSX.TargetedSubmitEvent<HTMLFormElement>) {
    event.preventDefault();
    setErrors({});
    setFormError(undefined);
    const changes = changesOf(values, client);
    if (typeof changes === 'string') {
      setErrors({ tags: changes });
      return;
    }
    if (Object.keys(changes).length === 0) {
      setFormError('Nothing to save: no field was changed.');
      return;
    }
    setBusy(true);
    try {
      await onSubmit(changes);
      setSaved(true);
      if (!client) setValues(valuesOf());
    } catch (error) {
      const { byField, rest } = fieldErrors(error, FIELDS);
      setErrors(byField);
      setFormError(rest);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate class="client-form">
      <Field id={id('name')} label="Name" error={errors.name}>
        <input
          {...describedBy(id('name'), errors.name)}
          value={values.name}
          onInput={(e) => set('name', e.currentTarget.value)}
          autocomplete="off"
        />
      </Field>
      <Field id={id('description')} label="Description" error={errors.description}>
        <textarea
          {...describedBy(id('description'), errors.description)}
          rows={2}
          value={values.description}
          onInput={(e) => set('description', e.currentTarget.value)}
        />
      </Field>
      <Field id={id('scopes')} label="Scopes" error={errors.scopes} hint="Separated by spaces, e.g. invoices:read orders:write">
        <input
          {...describedBy(id('scopes'), errors.scopes, true)}
          value={values.scopes}
          onInput={(e) => set('scopes', e.currentTarget.value)}
          autocomplete="off"
          spellcheck={false}
        />
      </Field>
      <Field id={id('tags')} label="Tags" error={errors.tags} hint="One key=value per line">
        <textarea
          {...describedBy(id('tags'), errors.tags, true)}
          rows={2}
          value={values.tags}
          onInput={(e) => set('tags', e.currentTarget.value)}
          spellcheck={false}
        />
      </Field>
      {client && (
        <div class={`field checkbox${errors.enabled ? ' invalid' : ''}`}>
          <input
            type="checkbox"
            {...describedBy(id('enabled'), errors.enabled)}
            checked={values.enabled}
            onChange={(e) => set('enabled', e.currentTarget.checked)}
          />
          <label for={id('enabled')}>Enabled (a disabled client’s tokens are refused)</label>
          {errors.enabled && (
            <p class="field-error" id={`${id('enabled')}-error`} role="alert">
              {errors.enabled}
            </p>
          )}
        </div>
      )}
      <ErrorLine error={formError} />
      <div class="actions">
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : submitLabel}
        </button>
        {saved && (
          <span class="ok" role="status">
            Saved.
          </span>
        )}
      </div>
    </form>
  );
}

export function Clients({ session, tenantId }: { session: Session; tenantId: string }) {
  const pager = usePager(tenantId);
  const page = useLoad(
    () => session.api.listClients(tenantId, { limit: PAGE_SIZE, ...(pager.cursor ? { cursor: pager.cursor } : {}) }),
    [tenantId, pager.cursor],
  );
  return (
    <>
      <h1>
        Service clients <span class="muted">of {tenantId}</span>
      </h1>
      <details class="panel" open={page.data?.items.length === 0 && pager.pageNumber === 1}>
        <summary>Create a client</summary>
        <ClientForm
          idPrefix="new-client"
          submitLabel="Create client"
          onSubmit={async (changes) => {
            const created = await session.api.createClient(tenantId, { ...changes, name: changes.name ?? '' });
            location.hash = href('tenants', tenantId, 'clients', created.clientId);
          }}
        />
      </details>
      <ErrorLine error={page.error} />
      <div class="table-wrap">
        <table>
          <caption>Newest first{page.loading ? ' (loading…)' : ''}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Client id</th>
              <th scope="col">Scopes</th>
              <th scope="col">Enabled</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
            </tr>
          </thead>
          <tbody>
            {page.data?.items.map((client) => (
              <tr key={client.clientId}>
                <td>
                  <a href={href('tenants', tenantId, 'clients', client.clientId)}>{client.name}</a>
                </td>
                <td>
                  <code>{client.clientId}</code>
                </td>
                <td>{client.scopes.join(' ') || <span class="muted">none</span>}</td>
                <td>{client.enabled ? 'yes' : 'no'}</td>
                <td>
                  <Time value={client.createdAt} />
                </td>
                <td>
                  <Time value={client.lastUsedAt} />
                </td>
              </tr>
            ))}
            {page.data?.items.length === 0 && (
              <tr>
                <td colSpan={6} class="muted">
                  No clients in this tenant yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} page={page.data} label="Clients" />
    </>
  );
}

export function ClientPage({ session, tenantId, clientId }: { session: Session; tenantId: string; clientId: string }) {
  const client = useLoad(() => session.api.getClient(tenantId, clientId), [tenantId, clientId]);
  const [deleteError, setDeleteError] = useState<unknown>();
  const data = client.data;
  return (
    <>
      <p class="breadcrumb">
        <a href={href('tenants', tenantId)}>Clients of {tenantId}</a> ›
      </p>
      <h1>{data?.name ?? clientId}</h1>
      <ErrorLine error={client.error} />
      {data && (
        <>
          <dl class="facts">
            <dt>Client id</dt>
            <dd>
              <code>{data.clientId}</code>
            </dd>
            <dt>Issuer</dt>
            <dd>
              <code>{data.issuer}</code>
            </dd>
            <dt>Enabled</dt>
            <dd>{data.enabled ? 'yes' : 'no'}</dd>
            <dt>Created</dt>
            <dd>
              <Time value={data.createdAt} />
            </dd>
            <dt>Updated</dt>
            <dd>
              <Time value={data.updatedAt} />
            </dd>
            <dt>Last used</dt>
            <dd>
              <Time value={data.lastUsedAt} />
            </dd>
          </dl>
          <Keys session={session} tenantId={tenantId} clientId={clientId} />
          <section aria-labelledby="edit-title">
            <h2 id="edit-title">Edit</h2>
            {/* Keyed by version: a save reloads the client and the form starts from what was stored. */}
            <ClientForm
              key={data.updatedAt}
              idPrefix="edit-client"
              client={data}
              submitLabel="Save changes"
              onSubmit={async (changes) => {
                await session.api.updateClient(tenantId, clientId, changes);
                client.reload();
              }}
            />
          </section>
          <section aria-labelledby="delete-title" class="danger">
            <h2 id="delete-title">Delete</h2>
            <p>Deleting the client revokes all its keys at once. Its audit records stay.</p>
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (!confirm(`Delete ${data.name} (${clientId}) and all its keys?`)) return;
                try {
                  await session.api.deleteClient(tenantId, clientId);
                  location.hash = href('tenants', tenantId);
                } catch (error) {
                  setDeleteError(error);
                }
              }}
            >
              Delete client
            </button>
            <ErrorLine error={deleteError} />
          </section>
        </>
      )}
    </>
  );
}
