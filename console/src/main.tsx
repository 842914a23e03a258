/**
 * The Keysmith console: one page, hash-routed, its only secret a non-extractable CryptoKey held in this module's
 * state. Nothing is written to storage, cookies or the URL; a reload or a closed tab forgets the key.
 */
import './styles.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { readSettings, type Session } from './api.ts';
import { Audit } from './audit.tsx';
import { ClientPage, Clients } from './clients.tsx';
import { SignIn } from './sign-in.tsx';
import { Tenants } from './tenants.tsx';
import { href } from './ui.tsx';

type Route =
  | { page: 'home' }
  | { page: 'tenants' }
  | { page: 'clients'; tenantId: string }
  | { page: 'client'; tenantId: string; clientId: string }
  | { page: 'audit'; tenantId: string }
  | { page: 'not-found' };

function parseRoute(hash: string): Route {
  let segments: string[];
  try {
    segments = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return { page: 'not-found' };
  }
  const [first, tenantId, section, clientId, ...rest] = segments;
  if (first === undefined) return { page: 'home' };
  if (first !== 'tenants' || rest.length > 0) return { page: 'not-found' };
  if (tenantId === undefined) return { page: 'tenants' };
  if (section === undefined) return { page: 'clients', tenantId };
  if (section === 'audit' && clientId === undefined) return { page: 'audit', tenantId };
  if (section === 'clients' && clientId !== undefined) return { page: 'client', tenantId, clientId };
  return { page: 'not-found' };
}

function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return parseRoute(hash);
}

function Page({ session, route, opened }: { session: Session; route: Route; opened: readonly string[] }) {
  switch (route.page) {
    case 'home':
      return session.platformAdmin ? (
        <Tenants session={session} opened={opened} />
      ) : (
        <Clients session={session} tenantId={session.tenantId} />
      );
    case 'tenants':
      return session.platformAdmin ? (
        <Tenants session={session} opened={opened} />
      ) : (
        <p>
          Only a platform admin manages other tenants. <a href={href('tenants', session.tenantId)}>Your tenant’s clients</a>
        </p>
      );
    case 'clients':
      return <Clients key={route.tenantId} session={session} tenantId={route.tenantId} />;
    case 'client':
      // A page per client: nothing of one (a new access key, a form, a roll) is left on another's.
      return (
        <ClientPage
          key={`${route.tenantId}/${route.clientId}`}
          session={session}
          tenantId={route.tenantId}
          clientId={route.clientId}
        />
      );
    case 'audit':
      return <Audit key={route.tenantId} session={session} tenantId={route.tenantId} />;
    default:
      return (
        <>
          <h1>Not found</h1>
          <p>
            The console has no page at this address. <a href="#/">Start over</a>
          </p>
        </>
      );
  }
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const [opened, setOpened] = useState<string[]>([]);
  const main = useRef<HTMLElement>(null);
  const tenantId = 'tenantId' in route ? route.tenantId : session.tenantId;
  const routeKey = JSON.stringify(route);

  useEffect(() => {
    if ('tenantId' in route && !opened.includes(route.tenantId)) setOpened((list) => [...list, route.tenantId]);
  }, [routeKey]);
  // A new page takes the focus to its content, as a full page load would, so a screen reader announces it.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [routeKey]);

  const current = (page: Route['page']) => (route.page === page ? { 'aria-current': 'page' as const } : {});
  return (
    <>
      {/* A button, not a link: with hash routing, `#main` would be a route. */}
      <button type="button" class="skip-link" onClick={() => main.current?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <a class="brand" href="#/">
          Keysmith
        </a>
        <nav aria-label="Main">
          <ul>
            {session.platformAdmin && (
              <li>
                <a href={href('tenants')} {...current('tenants')}>
                  Tenants
                </a>
              </li>
            )}
            <li>
              <a href={href('tenants', tenantId)} {...current('clients')}>
                Clients
              </a>
            </li>
            <li>
              <a href={href('tenants', tenantId, 'audit')} {...current('audit')}>
                Audit events
              </a>
            </li>
          </ul>
        </nav>
        <div class="who">
          <span>
            Signed in as <code>{session.clientId}</code> of <code>{session.tenantId}</code>
            {session.platformAdmin ? ' (platform admin)' : ' (tenant admin)'}
          </span>
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Page session={session} route={route} opened={opened} />
      </main>
    </>
  );
}

function App() {
  const settings = useState(readSettings)[0];
  const [session, setSession] = useState<Session>();
  if (!session) return <SignIn settings={settings} onSignedIn={setSession} />;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        // Dropping the session drops the only reference to the CryptoKey.
        setSession(undefined);
        history.replaceState(null, '', location.pathname);
      }}
    />
  );
}

const root = document.getElementById('app');
if (root) {
  // The static "this console needs JavaScript" text goes once the app runs.
  root.textContent = '';
  render(<App />, root);
}
