/** A platform admin's tenants: Keysmith keeps no tenant directory (a tenant is the id its clients carry), so open one by id. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { TENANT_ID } from '#shared/formats.ts';
import type { Session } from './api.ts';
import { describedBy, Field, href } from './ui.tsx';

export function Tenants({ session, opened }: { session: Session; opened: readonly string[] }) {
  const [tenantId, setTenantId] = useState('');
  const [error, setError] = useState<string>();
  const tenants = [session.tenantId, ...opened.filter((t) => t !== session.tenantId)];

  function open(event: JSX.TargetedSubmitEvent<HTMLFormElement>) {
    event.preventDefault();
    const id = tenantId.trim();
    if (!TENANT_ID.test(id)) {
      setError('A tenant id is 1 to 63 lower-case letters, digits, _ and -, starting with a letter or digit.');
      return;
    }
    location.hash = href('tenants', id);
  }

  return (
    <>
      <h1>Tenants</h1>
      <p>
        As a platform admin you manage every tenant. Keysmith has no list of tenants: a tenant exists as the id its clients carry,
        so open one by its id (a new id starts an empty tenant).
      </p>
      <form onSubmit={open} class="inline-form" noValidate>
        <Field id="tenant-id" label="Tenant id" error={error}>
          <input
            {...describedBy('tenant-id', error)}
            value={tenantId}
            onInput={(event) => setTenantId(event.currentTarget.value)}
            autocomplete="off"
            spellcheck={false}
          />
        </Field>
        <button type="submit">Open tenant</button>
      </form>
      <h2>Opened in this tab</h2>
      <ul class="tenant-list">
        {tenants.map((id) => (
          <li key={id}>
            <a href={href('tenants', id)}>{id}</a>
            {id === session.tenantId && <span class="muted"> (your own)</span>}
          </li>
        ))}
      </ul>
    </>
  );
}
