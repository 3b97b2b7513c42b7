// What every page may need: who is signed in, this instance's facts, and how
// to change them.
import { createContext, useContext } from '../vendor/htm-preact-standalone.module.js';

/** `{ user, instance, setUser, reloadInstance }` */
export const Session = createContext(null);

export function useSession() {
  return useContext(Session);
}

export function isAdmin(user) {
  return !!user && (user.role === 'admin' || user.role === 'root');
}
