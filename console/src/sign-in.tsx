/** Sign in with an admin's access key: pasted or dropped, imported into WebCrypto, never stored or sent. */
import type { JSX } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { type ConsoleSettings, type Session, signIn } from './api.ts';
import { ErrorLine } from './ui.tsx';

/** Access keys are a few hundred bytes to a couple of KB (RSA); a larger file is not one. */
const MAX_KEY_FILE_BYTES = 16 * 1024;

export function SignIn({ settings, onSignedIn }: { settings: ConsoleSettings; onSignedIn: (session: Session) => void }) {
  const [accessKey, setAccessKey] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);

  async function readFile(file: File | undefined) {
    if (!file) return;
    if (file.size > MAX_KEY_FILE_BYTES) {
      setError(`${file.name} is ${file.size} bytes: too large to be an access key.`);
      return;
    }
    setAccessKey((await file.text()).trim());
    setError(undefined);
  }

  async function submit(event: JSX.TargetedSubmitEvent<HTMLFormElement>) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const session = await signIn(accessKey, settings);
      // The text goes with the form; from now on only the non-extractable CryptoKey is held.
      setAccessKey('');
      if (fileInput.current) fileInput.current.value = '';
      onSignedIn(session);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main" class="sign-in">
      <h1>Keysmith console</h1>
      <form
        onSubmit={submit}
        class={dragging ? 'drop-target dragging' : 'drop-target'}
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          void readFile(event.dataTransfer?.files[0]);
        }}
      >
        <label for="access-key">Admin access key</label>
        <textarea
          id="access-key"
          rows={5}
          value={accessKey}
          onInput={(event) => setAccessKey(event.currentTarget.value)}
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          aria-describedby="access-key-hint"
          placeholder="sc_….….….MC4CAQAwBQYDK2VwBCIEI…"
          required
        />
        <p class="hint" id="access-key-hint">
          Paste the access key of a client with <code>keysmith:admin</code> or <code>keysmith:platform-admin</code>, or drop its
          file here. It stays in this tab’s memory as a key that can sign but cannot be read back; only tokens signed with it,
          each valid for a minute, are sent. Signing out, reloading or closing the tab forgets it.
        </p>
        <label for="access-key-file">Or choose a file</label>
        <input
          id="access-key-file"
          ref={fileInput}
          type="file"
          onChange={(event) => void readFile(event.currentTarget.files?.[0])}
        />
        <ErrorLine error={error} id="sign-in-error" />
        <button type="submit" disabled={busy || accessKey.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
