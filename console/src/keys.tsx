/**
 * A client's access keys: the list, revoke, roll, and a new key, generated in this tab by default so that its private
 * half never crosses the network (only the public JWK is registered, contract §5). Either way the access key is shown
 * once, here, and forgotten when the panel is closed.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { AccessKey, CreateKeyInput } from '#sdk/admin-types.ts';
import { ALGORITHMS, type Algorithm } from '#shared/model.ts';
import type { Session } from './api.ts';
import { formatAccessKey, generateKeyPair } from './crypto.ts';
import { describedBy, ErrorLine, Field, Time, useLoad } from './ui.tsx';

/** A client holds at most 90 stored keys: one page of 100 shows them all. */
const KEY_PAGE = 100;

const GRACE_PERIODS: readonly [number, string][] = [
  [0, 'none: the old key stops now'],
  [3600, '1 hour'],
  [86_400, '1 day'],
  [604_800, '7 days'],
];

type Origin = 'browser' | 'server';

interface ShownKey {
  accessKey: string;
  keyId: string;
  origin: Origin;
}

/**
 * Makes a key with `send` (create or roll): in the browser, only the public JWK goes out and the access key is
 * assembled here from the keyId the API answers; on the server, the API answers with the access key.
 */
async function makeKey(
  origin: Origin,
  algorithm: Algorithm,
  expiresAt: string,
  identity: { clientId: string; tenantId: string },
  send: (input: CreateKeyInput) => Promise<AccessKey & { accessKey?: string }>,
): Promise<ShownKey> {
  const expiry = expiresAt ? { expiresAt: new Date(expiresAt).toISOString() } : {};
  if (origin === 'server') {
    const created = await send({ algorithm, ...expiry });
    if (!created.accessKey) throw new Error('The API answered without an access key.');
    return { accessKey: created.accessKey, keyId: created.keyId, origin };
  }
  const pair = await generateKeyPair(algorithm);
  const created = await send({ publicKey: pair.publicKey, ...expiry });
  return {
    accessKey: formatAccessKey({ ...identity, keyId: created.keyId }, pair.privateKeyPkcs8),
    keyId: created.keyId,
    origin,
  };
}

function KeyOptions({
  idPrefix,
  origin,
  setOrigin,
  algorithm,
  setAlgorithm,
}: {
  idPrefix: string;
  origin: Origin;
  setOrigin: (origin: Origin) => void;
  algorithm: Algorithm;
  setAlgorithm: (algorithm: Algorithm) => void;
}) {
  return (
    <>
      <fieldset>
        <legend>Where the key pair is made</legend>
        <label>
          <input type="radio" name={`${idPrefix}-origin`} checked={origin === 'browser'} onChange={() => setOrigin('browser')} />{' '}
          In this browser (recommended: the private key never leaves this tab)
        </label>
        <label>
          <input type="radio" name={`${idPrefix}-origin`} checked={origin === 'server'} onChange={() => setOrigin('server')} /> By
          Keysmith (the private key is sent to this tab once)
        </label>
      </fieldset>
      <Field id={`${idPrefix}-algorithm`} label="Algorithm">
        <select id={`${idPrefix}-algorithm`} value={algorithm} onChange={(e) => setAlgorithm(e.currentTarget.value as Algorithm)}>
          {ALGORITHMS.map((a) => (
            <option key={a} value={a}>
              {a === 'EdDSA' ? 'EdDSA (Ed25519)' : a === 'ES256' ? 'ES256 (P-256)' : 'RS256 (RSA 2048)'}
            </option>
          ))}
        </select>
      </Field>
    </>
  );
}

function Expiry({ idPrefix, value, onChange }: { idPrefix: string; value: string; onChange: (value: string) => void }) {
  return (
    <Field id={`${idPrefix}-expires`} label="Expires (optional, your local time)">
      <input
        type="datetime-local"
        {...describedBy(`${idPrefix}-expires`, undefined)}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    </Field>
  );
}

/** The access key, once: copy, download, and a plain warning. Closing forgets it. */
function ShownOnce({ shown, clientId, onDone }: { shown: ShownKey; clientId: string; onDone: () => void }) {
  const area = useRef<HTMLTextAreaElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const [copied, setCopied] = useState<string>();
  useEffect(() => heading.current?.focus(), []);

  async function copy() {
    try {
      await navigator.clipboard.writeText(shown.accessKey);
      setCopied('Copied to the clipboard.');
    } catch {
      area.current?.select();
      setCopied('The browser refused the clipboard: the key is selected, press Ctrl+C (⌘C).');
    }
  }

  function download() {
    const url = URL.createObjectURL(new Blob([`${shown.accessKey}\n`], { type: 'text/plain' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = `${clientId}.${shown.keyId}.access-key`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  return (
    <section class="shown-once" aria-labelledby="shown-once-title">
      <h3 id="shown-once-title" tabIndex={-1} ref={heading}>
        New access key {shown.keyId}
      </h3>
      <p class="warning" role="alert">
        This is the only time this access key is shown. Copy it or download it now and store it as a secret: Keysmith does not
        keep it and cannot show it again.
        {shown.origin === 'browser' ? ' It was made in this browser; its private key has not been sent anywhere.' : ''}
      </p>
      <label for="new-access-key">Access key</label>
      <textarea id="new-access-key" ref={area} readOnly rows={4} spellcheck={false} value={shown.accessKey} />
      <div class="actions">
        <button type="button" onClick={copy}>
          Copy
        </button>
        <button type="button" onClick={download}>
          Download
        </button>
        <button type="button" onClick={onDone}>
          I have stored it — close
        </button>
        {copied && <span role="status">{copied}</span>}
      </div>
    </section>
  );
}

export function Keys({ session, tenantId, clientId }: { session: Session; tenantId: string; clientId: string }) {
  const keys = useLoad(() => session.api.listKeys(tenantId, clientId, { limit: KEY_PAGE }), [tenantId, clientId]);
  const [origin, setOrigin] = useState<Origin>('browser');
  const [algorithm, setAlgorithm] = useState<Algorithm>('EdDSA');
  const [expiresAt, setExpiresAt] = useState('');
  const [rolling, setRolling] = useState<AccessKey>();
  const [grace, setGrace] = useState(86_400);
  const [shown, setShown] = useState<ShownKey>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const identity = { clientId, tenantId };

  async function run(action: () => Promise<ShownKey | undefined>) {
    setBusy(true);
    setError(undefined);
    try {
      const made = await action();
      if (made) setShown(made);
      keys.reload();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }

  const create = (event: JSX.TargetedSubmitEvent<HTMLFormElement>) => {
    event.preventDefault();
    void run(() => makeKey(origin, algorithm, expiresAt, identity, (input) => session.api.createKey(tenantId, clientId, input)));
  };

  const roll = (event: JSX.TargetedSubmitEvent<HTMLFormElement>) => {
    event.preventDefault();
    const old = rolling;
    if (!old) return;
    void run(async () => {
      const made = await makeKey(origin, algorithm, expiresAt, identity, (input) =>
        session.api.rollKey(tenantId, clientId, old.keyId, { ...input, gracePeriodSeconds: grace }),
      );
      setRolling(undefined);
      return made;
    });
  };

  const revoke = (key: AccessKey) => {
    if (!confirm(`Revoke key ${key.keyId}? Tokens signed with it are refused within the revocation bound.`)) return;
    void run(async () => {
      await session.api.revokeKey(tenantId, clientId, key.keyId);
      return undefined;
    });
  };

  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">Access keys</h2>
      {shown && <ShownOnce shown={shown} clientId={clientId} onDone={() => setShown(undefined)} />}
      <ErrorLine error={keys.error ?? error} />
      <div class="table-wrap">
        <table>
          <caption>Newest first{keys.loading ? ' (loading…)' : ''}</caption>
          <thead>
            <tr>
              <th scope="col">Key id</th>
              <th scope="col">Status</th>
              <th scope="col">Algorithm</th>
              <th scope="col">Made</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data?.items.map((key) => (
              <tr key={key.keyId} data-key-id={key.keyId}>
                <td>
                  <code>{key.keyId}</code>
                </td>
                <td>
                  <span class={`status ${key.status}`}>{key.status}</span>
                  {key.replacedBy && <span class="muted"> → {key.replacedBy}</span>}
                </td>
                <td>{key.algorithm}</td>
                <td>{key.origin === 'registered' ? 'registered' : 'by Keysmith'}</td>
                <td>
                  <Time value={key.createdAt} />
                </td>
                <td>
                  <Time value={key.expiresAt} />
                </td>
                <td>
                  <Time value={key.lastUsedAt} />
                </td>
                <td class="row-actions">
                  {key.status === 'active' && (
                    <button type="button" onClick={() => setRolling(key)} aria-label={`Roll key ${key.keyId}`} disabled={busy}>
                      Roll
                    </button>
                  )}
                  {(key.status === 'active' || key.status === 'rolling') && (
                    <button
                      type="button"
                      class="danger"
                      onClick={() => revoke(key)}
                      aria-label={`Revoke key ${key.keyId}`}
                      disabled={busy}
                    >
                      {key.status === 'rolling' ? 'Revoke now' : 'Revoke'}
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {keys.data?.items.length === 0 && (
              <tr>
                <td colSpan={8} class="muted">
                  No keys yet: add one below.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {rolling ? (
        <form onSubmit={roll} class="panel" aria-labelledby="roll-title">
          <h3 id="roll-title">Roll key {rolling.keyId}</h3>
          <p>
            A new key replaces it; the old one keeps working for the grace period, so the callers can move over without downtime.
          </p>
          <KeyOptions idPrefix="roll" {...{ origin, setOrigin, algorithm, setAlgorithm }} />
          <Expiry idPrefix="roll" value={expiresAt} onChange={setExpiresAt} />
          <Field id="roll-grace" label="Grace period of the old key">
            <select id="roll-grace" value={grace} onChange={(e) => setGrace(Number(e.currentTarget.value))}>
              {GRACE_PERIODS.map(([seconds, label]) => (
                <option key={seconds} value={seconds}>
                  {label}
                </option>
              ))}
            </select>
          </Field>
          <div class="actions">
            <button type="submit" disabled={busy}>
              {busy ? 'Rolling…' : 'Roll key'}
            </button>
            <button type="button" onClick={() => setRolling(undefined)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <form onSubmit={create} class="panel" aria-labelledby="create-key-title">
          <h3 id="create-key-title">Add an access key</h3>
          <KeyOptions idPrefix="create" {...{ origin, setOrigin, algorithm, setAlgorithm }} />
          <Expiry idPrefix="create" value={expiresAt} onChange={setExpiresAt} />
          <div class="actions">
            <button type="submit" disabled={busy}>
              {busy ? 'Adding…' : 'Add key'}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
