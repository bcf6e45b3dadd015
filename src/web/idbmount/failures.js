/* failures.js - what went wrong, in kinds a person can act on, and when to
 * try again.
 */

/* The one retry policy: exponential backoff with "equal jitter" - half the
 * step fixed, half random - so a fleet of tabs coming back online does not
 * knock at the same moment. */
export class Backoff {
	constructor(baseMs = 500, capMs = 30000) {
		this.baseMs = baseMs;
		this.capMs = capMs;
		this.failures = 0;
	}
	next() {
		const step = Math.min(this.capMs, this.baseMs * 2 ** this.failures);
		this.failures = Math.min(this.failures + 1, 30);
		return step / 2 + Math.random() * (step / 2);
	}
	reset() {
		this.failures = 0;
	}
}

/* An error that the sync loop sorts into a kind a person can act on:
 * offline, auth (401), forbidden (403), too-large (413), client (4xx),
 * server (5xx/429), quota, schema, local. */
export class SyncError extends Error {
	constructor(kind, message, { status = 0, detail = null } = {}) {
		super(message);
		this.name = 'SyncError';
		this.kind = kind;
		this.status = status;
		this.detail = detail;
	}
}

export function classifyLocalError(err) {
	if (err instanceof SyncError) return err;
	if (err && err.name === 'QuotaExceededError')
		return new SyncError('quota', 'the browser refused to store more data (quota exceeded); nothing was lost, sync will retry');
	return new SyncError('local', String(err && err.message ? err.message : err));
}

export function sleep(ms, signal) {
	return new Promise(resolve => {
		/* An aborted signal fires no more 'abort' events: without this, a
		 * tab hidden while it synced kept the lock for a whole wait. */
		if (signal?.aborted) {
			resolve();
			return;
		}
		const t = setTimeout(resolve, ms);
		signal?.addEventListener('abort', () => {
			clearTimeout(t);
			resolve();
		}, { once: true });
	});
}
