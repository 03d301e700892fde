// Signing in to a control plane that requires tokens (--auth-tokens): the
// token the user enters is kept in sessionStorage (gone when the tab
// closes, never in localStorage) and sent as "Authorization: Bearer" on
// every API call. An answer 401 shows the sign-in form; "sign out"
// forgets the token.

const key = 'meshlens.token';

/** The token signed in with in this tab, or "". */
export function token(): string {
  try {
    return sessionStorage.getItem(key) ?? '';
  } catch {
    return '';
  }
}

/** fetch with the signed-in token; an answer 401 shows the sign-in form. */
export async function authFetch(url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const t = token();
  // With a token, the page's preload of /v1/meshes (sent without one)
  // must not answer the call: a preload answers only a request of its
  // credentials mode (same-origin), and this one is made with "include"
  // (the same for a same-origin call) and past the cache.
  if (t) headers.set('Authorization', `Bearer ${t}`);
  const resp = await fetch(url, t ? { ...init, headers, cache: 'no-store', credentials: 'include' } : { ...init, headers });
  if (resp.status === 401) {
    let msg = '';
    try {
      msg = JSON.parse(await resp.clone().text()).message ?? '';
    } catch {
      /* not JSON: the status says it */
    }
    showSignIn(t ? `The token was refused: ${msg || '401 Unauthorized'}` : '');
  }
  return resp;
}

/** Forget the token and start over. */
export function signOut(): void {
  sessionStorage.removeItem(key);
  location.reload();
}

/** Adds "sign out" to the header when a token is in use. */
export function installSignOut(header: HTMLElement): void {
  if (!token()) return;
  const a = document.createElement('a');
  a.id = 'sign-out';
  a.href = '#';
  a.textContent = 'sign out';
  a.addEventListener('click', (ev) => {
    ev.preventDefault();
    signOut();
  });
  header.append(a);
}

let form: HTMLFormElement | undefined;

/** Shows the sign-in form (once), with why it is shown when given. */
export function showSignIn(why: string): void {
  if (form) return;
  sessionStorage.removeItem(key);
  const input = document.createElement('input');
  input.id = 'signin-token';
  input.type = 'password';
  input.autocomplete = 'off';
  input.placeholder = 'mlt_…';
  input.size = 60;
  const err = document.createElement('p');
  err.id = 'signin-error';
  err.className = 'signin-error';
  err.textContent = why;
  const button = document.createElement('button');
  button.type = 'submit';
  button.textContent = 'Sign in';
  const title = document.createElement('h2');
  title.textContent = 'Sign in';
  const help = document.createElement('p');
  help.textContent = 'This control plane requires a token. A read token is enough to see the console (meshlens token create --role read).';
  form = document.createElement('form');
  form.id = 'signin';
  form.className = 'signin';
  form.append(title, help, input, ' ', button, err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) {
      err.textContent = 'Enter a token.';
      return;
    }
    button.disabled = true;
    err.textContent = '';
    try {
      const resp = await fetch('/v1/meshes', { headers: { Accept: 'application/json', Authorization: `Bearer ${t}` } });
      if (resp.ok) {
        sessionStorage.setItem(key, t);
        location.reload();
        return;
      }
      let msg = `${resp.status} ${resp.statusText}`;
      try {
        msg = JSON.parse(await resp.text()).message ?? msg;
      } catch {
        /* not JSON: the status says it */
      }
      err.textContent = resp.status === 403 ? `This token may not read the console: it needs role read. (${msg})` : `The token was refused: ${msg}`;
    } catch (e) {
      err.textContent = `The control plane did not answer: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      button.disabled = false;
    }
  });
  const overlay = document.createElement('div');
  overlay.className = 'signin-overlay';
  overlay.append(form);
  document.body.append(overlay);
  input.focus();
}
