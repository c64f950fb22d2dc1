import { api, ApiError } from "./api";

/** Whether the admin is logged in: null while the first check runs. */
export const session = $state<{ loggedIn: boolean | null }>({ loggedIn: null });

/** Asks the server whether the session cookie is still valid (a logged-out visitor is an answer, not an error). */
export async function checkSession(): Promise<void> {
  session.loggedIn = (await api.session()).authenticated;
}

export async function logIn(password: string): Promise<void> {
  await api.login(password);
  session.loggedIn = true;
}

export async function logOut(): Promise<void> {
  await api.logout();
  session.loggedIn = false;
}

/** Call when any API call answers 401: the session expired or was revoked. */
function sessionExpired(): void {
  session.loggedIn = false;
}

/** The message to show for a failed call; a 401 ends the session instead (the login form shows) and gives null. */
export function errorMessage(err: unknown): string | null {
  if (err instanceof ApiError && err.status === 401) {
    sessionExpired();
    return null;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A page's way to run an action: do it, reload the page's data, and show the
 * error (or end the session on a 401) if anything fails.
 */
export function actionRunner(load: () => Promise<void>, showError: (message: string | null) => void) {
  return async function run(action: () => Promise<unknown>): Promise<boolean> {
    try {
      await action();
      showError(null);
      await load();
      return true;
    } catch (err) {
      showError(errorMessage(err));
      return false;
    }
  };
}
