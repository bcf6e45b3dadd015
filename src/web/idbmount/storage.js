/* storage.js - the browser's storage for this origin: how much is used, and
 * whether it may be evicted.
 */

/* storageHealth() -> {usage, quota, persisted} from the Storage API (null
 * fields where the browser has none). */
export async function storageHealth() {
	const st = typeof navigator === 'object' && navigator ? navigator.storage : null;
	const out = { usage: null, quota: null, persisted: null };
	if (!st) return out;
	try {
		const est = await st.estimate();
		out.usage = est.usage ?? null;
		out.quota = est.quota ?? null;
	} catch {
		/* not available in this context */
	}
	try {
		out.persisted = await st.persisted();
	} catch {
		/* idem */
	}
	return out;
}

/* requestPersistence() -> whether the browser granted persistent storage
 * (navigator.storage.persist()), so eviction cannot drop the outbox. */
export async function requestPersistence() {
	const st = typeof navigator === 'object' && navigator ? navigator.storage : null;
	if (!st || typeof st.persist !== 'function') return false;
	try {
		return await st.persist();
	} catch {
		return false;
	}
}
