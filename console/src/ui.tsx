/** Small pieces every page uses: loading a page of data, paging through it, errors, times, fields. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import type { Page } from '#sdk/admin-types.ts';
import { describeError } from './api.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` now and whenever `deps` change (or `reload` is called); a late answer of an earlier run is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setState((previous) => ({ ...previous, loading: true }));
    load().then(
      (data) => current && setState({ data, loading: false }),
      (error: unknown) => current && setState({ error, loading: false }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  return { data: state.data, error: state.error, loading: state.loading, reload: useCallback(() => setRound((r) => r + 1), []) };
}

/** Cursor paging: the cursors of the pages before this one, so Previous works without the API going backwards. */
export function usePager(resetKey: string) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  useEffect(() => setCursors([undefined]), [resetKey]);
  const cursor = cursors[cursors.length - 1];
  return {
    cursor,
    pageNumber: cursors.length,
    next: (nextCursor: string) => setCursors((list) => [...list, nextCursor]),
    previous: () => setCursors((list) => (list.length > 1 ? list.slice(0, -1) : list)),
    first: () => setCursors([undefined]),
  };
}

export function Pager({
  pager,
  page,
  label,
}: {
  pager: ReturnType<typeof usePager>;
  page: Page<unknown> | undefined;
  label: string;
}) {
  const nextCursor = page?.nextCursor;
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={pager.previous} disabled={pager.pageNumber === 1}>
        Previous page
      </button>
      <span>Page {pager.pageNumber}</span>
      <button type="button" onClick={() => nextCursor && pager.next(nextCursor)} disabled={!nextCursor}>
        Next page
      </button>
    </nav>
  );
}

/** An error line, announced to screen readers as it appears. */
export function ErrorLine({ error, id }: { error: unknown; id?: string }) {
  if (error === undefined || error === null || error === '') return null;
  return (
    <p class="error" role="alert" id={id}>
      {typeof error === 'string' ? error : describeError(error)}
    </p>
  );
}

/** An instant as `2026-12-04 21:30 UTC`, machine-readable in `datetime`. */
export function Time({ value }: { value: string | undefined }) {
  if (!value) return <span class="muted">—</span>;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return <span>{value}</span>;
  return (
    <time dateTime={value} title={value}>
      {date.toISOString().slice(0, 16).replace('T', ' ')} UTC
    </time>
  );
}

/** A labelled form field with its error beside it (and tied to it for screen readers). */
export function Field({
  id,
  label,
  error,
  hint,
  children,
}: {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string;
  children: ComponentChildren;
}) {
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children}
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** The aria attributes of an input inside {@link Field}. */
export const describedBy = (id: string, error: string | undefined, hint = false) => ({
  id,
  'aria-invalid': error ? true : undefined,
  'aria-describedby': [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined,
});

/** A link inside the console (hash routing: the page is one document, and the key lives in its memory). */
export const href = (...segments: string[]): string => `#/${segments.map(encodeURIComponent).join('/')}`;
