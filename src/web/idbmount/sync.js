/* sync.js - the Sync: one syncing tab per database pushes pending writes
 * in batches (push.js), pulls with a persisted checkpoint (pull.js) and
 * follows /v1/events (events.js); every tab shows the states of records.
 *
 * A failing server (decision): after a failed round (no answer, 5xx, a
 * local error) the server is asked again only once the backoff step is
 * over (exponential from 0.5 s up to 30 s, with jitter), whatever the app
 * writes meanwhile: writes only wait in the outbox. The event stream does
 * not reconnect on its own meanwhile, and the step is kept in the meta
 * store, so the tab that takes over or the page after a reload waits it
 * out too: one attempt per step per database, across tabs. Back online, a
 * new token (setToken) or the event stream getting through end the wait.
 *
 * Tabs (decision): one tab per database syncs, chosen with a Web Lock
 * ("idbmount-sync:<url>:<db>"). It lets the lock go when the page is hidden
 * or frozen, so a background or dead tab never stalls sync; any other tab
 * then takes over. The other tabs hear its news through tabs.js.
 */
import {
	JOURNAL, OUTBOX, REVS, META, RELAXED, native, rawTransaction, silentTransactions, appVersionOf, realVersion,
	realStoreNames, isInternalStoreName, isExcluded,
} from './raw.js';
import { bytesToBase64url, encodeKey, JsonText } from './codec.js';
import { done, finished, openRequest } from './idb.js';
import { channelFor, closeChannel, reopenChannel, dirtyListeners, refusedListeners, leadingHere } from './tabs.js';
import { ensureCaptureOf } from './capture.js';
import { lookAtDatabase, rawOf } from './versions.js';
import { FOLD_IDLE_MS, rangeOfStore, runRange, newerRevision, revisionsInRuns, foldRuns } from './revisions.js';
import { pendingWrites } from './outbox.js';
import { Backoff, SyncError, classifyLocalError, sleep } from './failures.js';
import { followEvents } from './events.js';
import { pushAll, compact, readBatch, encodeBatch, acknowledge } from './push.js';
import { pullPage, pullAll, applyParked, applyChanges, createServerStores } from './pull.js';
import { storageHealth } from './storage.js';

/* The origin the library was loaded from (this module sits beside the
 * entry, /idbmount.js, on the daemon's origin); none outside http(s). */
const DEFAULT_URL = (() => {
	try {
		return new URL('.', import.meta.url).href.startsWith('http') ? new URL('/', import.meta.url).href : null;
	} catch {
		return null;
	}
})();

/* A request body: the JSON text as a Blob. Chromium sends a push of 1,000
 * records (~480 KB) given as a Blob in about a third of the time it takes
 * for the same text given as a string or bytes (measured 60 ms against
 * 160 ms, body to answer, on the benchmark's machine). */
function jsonBody(value) {
	const text = value instanceof JsonText ? value.text : JSON.stringify(value);
	return typeof Blob === 'function' ? new Blob([text], { type: 'application/json' }) : text;
}

/* startSync({database, url, token, ...}) -> Sync (already started).
 * Options: database (name), url (the daemon, default: where the library
 * was loaded from), token, batchSize (1000), pullLimit (1000),
 * conflict(c) (hook, see push.js), serverStores ("upgrade" |
 * "report"), fetch (default globalThis.fetch), lock (true: Web Locks when
 * available). */
export function startSync(options) {
	const sync = new Sync(options);
	sync.start();
	return sync;
}

export class Sync extends EventTarget {
	constructor({ database, url = DEFAULT_URL, token, batchSize = 1000, pullLimit = 1000, conflict, serverStores = 'upgrade',
		fetch: fetchImpl, lock = true, backoff } = {}) {
		super();
		/* "" is a database name IndexedDB allows. */
		if (database === undefined || database === null) throw new TypeError('idbmount: startSync needs {database}');
		if (!url) throw new TypeError('idbmount: startSync needs {url}');
		this.database = String(database);
		this.url = url.endsWith('/') ? url : url + '/';
		this.token = token;
		this.batchSize = batchSize;
		this.maxBatchSize = batchSize;
		this.pullLimit = pullLimit;
		this.conflictHook = conflict || null;
		this.serverStores = serverStores;
		this.fetchImpl = fetchImpl || ((...a) => globalThis.fetch(...a));
		this.useLock = lock;
		this.backoff = backoff || new Backoff();
		this.eventBackoff = new Backoff();
		this.state = {
			leader: false,
			online: typeof navigator === 'object' && 'onLine' in navigator ? navigator.onLine : true,
			syncing: false,
			outbox: null,
			lastError: null,
			checkpoint: null,
			delivered: null,
			epoch: null,
			notApplied: [],
			retryAt: null,
		};
		this.db = null;
		this.stopped = true;
		this.wakeController = new AbortController();
		this.wakePending = false;
		this.retryWakePending = false;
		this.backingOff = false;
		this.retry = null; /* {failures, at}: failing, no attempt before `at` (see noteFailure) */
		this.reachableWaiters = [];
		this.answers = 0; /* HTTP answers received, of any status */
		this.authBlocked = false;
		this.schemaSent = false;
		this.ownSeqs = new Set(); /* seqs of this tab's acknowledged pushes */
		this.upgradeWait = null; /* a blocked upgrade of ours, until it runs */
		this.installId = null;
		this.runsWritten = null; /* unknown: runs another tab left are folded at the first quiet moment */
		ensureCaptureOf(this.database);
	}

	/* --- status ---------------------------------------------------------- */

	setState(patch) {
		Object.assign(this.state, patch);
		/* A frozen page's listeners would start work (a list that reads
		 * the database on every status) that cannot finish until it
		 * resumes, and an unfinished IndexedDB transaction there blocks
		 * every other tab's writes: the status is told on resume. */
		if (this.frozen) {
			this.statusWhenResumed = true;
			return;
		}
		this.dispatchEvent(Object.assign(new Event('status'), { status: { ...this.state } }));
		if (this.state.leader) channelFor(this.database)?.postMessage({ type: 'status', status: { ...this.state } });
	}

	emit(type, detail) {
		this.dispatchEvent(Object.assign(new Event(type), { detail }));
	}

	reportError(err) {
		const e = classifyLocalError(err);
		const lastError = { kind: e.kind, status: e.status, message: e.message, detail: e.detail, at: new Date().toISOString() };
		this.setState({ lastError });
		this.emit('error', lastError);
		return e;
	}

	/* status() -> {leader, online, syncing, outbox, lastError, checkpoint,
	 * delivered, notApplied, storage: {usage, quota, persisted}}. */
	async status() {
		const s = { ...this.state, outbox: await this.outboxLength() };
		s.storage = await storageHealth();
		return s;
	}

	/* Folds the revision runs into per-record entries (see revisions.js),
	 * one run per transaction of its own: a first sync leaves a run per
	 * page, and folding one (~1,000 small puts) holds the revisions store
	 * for a fraction of a second, so a write of the app never waits long
	 * behind it. With `untilWoken` it stops between two transactions when
	 * the loop was woken (new writes, changes on the server): the rest is
	 * folded at the next quiet moment. Resolves with the number of runs
	 * folded. */
	async foldRevisions(untilWoken = false) {
		let total = 0;
		for (;;) {
			const db = await this.connection();
			if (!db) return total;
			this.checkLead();
			const tx = rawTransaction(db, [REVS], 'readwrite', RELAXED);
			silentTransactions.add(tx);
			const end = finished(tx);
			end.catch(() => {});
			const folded = await foldRuns(tx, 1);
			await end;
			total += folded;
			if (!folded) {
				this.runsWritten = false;
				return total;
			}
			if (untilWoken && this.wakePending) return total;
		}
	}

	/* Number of keys with a write not yet acknowledged (pending or
	 * rejected). */
	async outboxLength() {
		return this.reading(async db => (db ? (await pendingWrites(rawTransaction(db, [JOURNAL, OUTBOX], 'readonly'))).size : 0));
	}

	/* Runs fn(connection) for a read; once more on a fresh connection when
	 * the old one was closing (another connection's upgrade, a page being
	 * torn down). */
	async reading(fn) {
		try {
			return await fn(await this.connection());
		} catch (err) {
			if (!err || err.name !== 'InvalidStateError') throw err;
			this.db = null;
			return fn(await this.connection());
		}
	}

	/* recordState(store, key) -> "pending" | "rejected" | "synced" |
	 * "delivered" | "local" (never seen by the server, nothing pending). */
	async recordState(storeName, key) {
		return (await this.recordStates(storeName, key)).get(JSON.stringify(encodeKey(key))) || 'local';
	}

	stateOf(pending, rev) {
		if (pending) return pending.journal || !pending.marker.rejected ? 'pending' : 'rejected';
		if (!rev) return 'local';
		if (this.state.delivered !== null && typeof rev.seq === 'number' && rev.seq <= this.state.delivered) return 'delivered';
		return 'synced';
	}

	/* recordStates(store) -> Map of canonical-key JSON -> state, for every
	 * key with a pending write or a known revision (for lists in a UI). */
	async recordStates(storeName, onlyKey) {
		return this.reading(db => (db ? this.readStates(db, storeName, onlyKey) : new Map()));
	}

	async readStates(db, storeName, onlyKey) {
		const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS], 'readonly');
		const range = onlyKey === undefined ? rangeOfStore(storeName) : [storeName, onlyKey];
		const [pending, rKeys, rVals, runs] = await Promise.all([
			pendingWrites(tx),
			done(native.txObjectStore.call(tx, REVS).getAllKeys(range)),
			done(native.txObjectStore.call(tx, REVS).getAll(range)),
			done(native.txObjectStore.call(tx, REVS).getAll(runRange())),
		]);
		const mine = new Map();
		/* The keys of a key set are known once the syncing tab resolved it
		 * (its next round); until then they show their earlier state. */
		for (const p of pending.values()) if (p.store === storeName && !p.keySet) mine.set(JSON.stringify(encodeKey(p.key)), p);
		const revs = new Map(rKeys.map((k, i) => [JSON.stringify(encodeKey(k[1])), rVals[i]]));
		const only = onlyKey === undefined ? null : new Set([JSON.stringify(encodeKey(onlyKey))]);
		for (const [id, { rec }] of revisionsInRuns(runs, storeName, only)) revs.set(id, newerRevision(revs.get(id), rec));
		const out = new Map();
		for (const k of new Set([...mine.keys(), ...revs.keys()])) out.set(k, this.stateOf(mine.get(k), revs.get(k)));
		return out;
	}
	/* storeState(store) -> {pending, rejected, synced, delivered}. */
	async storeState(storeName) {
		const counts = { pending: 0, rejected: 0, synced: 0, delivered: 0, local: 0 };
		for (const s of (await this.recordStates(storeName)).values()) counts[s] += 1;
		delete counts.local;
		return counts;
	}

	/* --- lifecycle ------------------------------------------------------- */

	start() {
		if (!this.stopped) return;
		this.stopped = false;
		this.stopController = new AbortController();
		const signal = this.stopController.signal;
		dirtyListeners.set(this.database, (dirtyListeners.get(this.database) || new Set()).add(this.onDirty = () => this.wake()));
		this.onRefused = err => this.reportError(new SyncError('quota',
			'the browser refused to store a write of this app (quota exceeded: ' + (err.message || err.name) + '); that transaction was rolled back as a whole, everything committed before is kept and syncs'));
		refusedListeners.set(this.database, (refusedListeners.get(this.database) || new Set()).add(this.onRefused));
		this.onMessage = ev => this.fromOtherTab(ev.data);
		this.channel = channelFor(this.database);
		this.channel?.addEventListener('message', this.onMessage);
		if (typeof addEventListener === 'function' && typeof window === 'object') {
			this.onOnline = () => {
				this.setState({ online: true });
				this.eventBackoff.reset();
				this.retryNow();
			};
			this.onOffline = () => this.setState({ online: false });
			addEventListener('online', this.onOnline, { signal });
			addEventListener('offline', this.onOffline, { signal });
		}
		if (typeof document === 'object' && document && typeof document.addEventListener === 'function') {
			/* Hidden, frozen (a background tab the browser stops running),
			 * or leaving (pagehide: closed, or kept in the back/forward
			 * cache, where a held Web Lock or an open request would keep it
			 * out): let go at once. Shown, resumed or restored: sync again. */
			const onHide = () => this.releaseLeadership();
			const onShow = () => {
				if (document.visibilityState !== 'hidden') this.seekLeadership();
			};
			const onFreeze = () => {
				this.frozen = true;
				onHide();
			};
			const onResume = () => {
				this.frozen = false;
				if (this.statusWhenResumed) {
					this.statusWhenResumed = false;
					this.setState({});
				}
				onShow();
			};
			document.addEventListener('visibilitychange', () => {
				if (document.visibilityState === 'hidden') onHide();
				else onShow();
			}, { signal });
			document.addEventListener('freeze', onFreeze, { signal });
			document.addEventListener('resume', onResume, { signal });
			if (typeof window === 'object' && typeof window.addEventListener === 'function') {
				window.addEventListener('pagehide', () => {
					onFreeze();
					closeChannel(this.database);
				}, { signal });
				window.addEventListener('pageshow', ev => {
					if (!ev.persisted) return;
					this.channel = reopenChannel(this.database);
					this.channel?.addEventListener('message', this.onMessage);
					onResume();
				}, { signal });
			}
		}
		this.seekLeadership();
	}

	stop() {
		if (this.stopped) {
			if (this.db) this.db.close();
			this.db = null;
			return;
		}
		this.stopped = true;
		this.stopController.abort();
		this.releaseLeadership();
		dirtyListeners.get(this.database)?.delete(this.onDirty);
		refusedListeners.get(this.database)?.delete(this.onRefused);
		this.channel?.removeEventListener('message', this.onMessage);
		this.channel = null;
		if (this.db) this.db.close();
		this.db = null;
	}

	/* A new token after a 401 (revoked or expired): sync resumes. */
	setToken(token) {
		this.token = token;
		this.authBlocked = false;
		this.retryNow();
	}

	/* Push and pull now (returns when the outbox was pushed and the pull
	 * caught up, or rejects with the error that stopped it). Only in the
	 * syncing tab; elsewhere it wakes nothing and resolves false. */
	async syncNow() {
		if (!this.state.leader) return false;
		await this.cycle();
		return true;
	}

	/* Wakes the syncing loop. "work" (new writes, changes on the server)
	 * ends an idle wait, not a backoff wait: while the server fails, writes
	 * only wait in the outbox. "retry" (back online, a new token, the event
	 * stream back) ends a backoff wait too. */
	wake(kind = 'work') {
		this.wakePending = true;
		if (kind === 'retry') this.retryWakePending = true;
		if (kind === 'retry' || !this.backingOff) this.wakeController.abort();
	}

	/* Waits `ms` or until woken (or the lead ends; during a backoff wait,
	 * only by a "retry" wake); resolves true when the whole time passed
	 * with nothing waking it. The round that follows covers every wake. */
	async waitForWake(ms, backoff = false) {
		if (backoff ? this.retryWakePending : this.wakePending) {
			this.wakePending = this.retryWakePending = false;
			return false;
		}
		this.backingOff = backoff;
		this.wakeController = new AbortController();
		const any = AbortSignal.any ? AbortSignal.any([this.wakeController.signal, this.leaderSignal]) : this.wakeController.signal;
		await sleep(ms, any);
		this.backingOff = false;
		const quiet = !(backoff ? this.retryWakePending : this.wakePending) && !any.aborted;
		this.wakePending = this.retryWakePending = false;
		return quiet;
	}

	/* --- failing: one attempt per backoff step ----------------------------- */

	/* After a failed round, or an event stream that could not connect, the
	 * server is not asked again before the backoff step is over: writes
	 * only wait in the outbox (their wake does not end the wait), the event
	 * stream waits for a round that gets through instead of knocking on its
	 * own, and the step is kept in the meta store, so a tab that takes the
	 * lead (or the page after a reload) waits it out too. A second failure
	 * within the same step (the stream and a round failing together) does
	 * not lengthen it. */
	async noteFailure() {
		if (this.retry && this.retry.at > Date.now()) return;
		const wait = this.backoff.next();
		this.retry = { failures: this.backoff.failures, at: Date.now() + wait };
		this.setState({ retryAt: this.retry.at });
		await this.saveRetry();
	}

	/* A round got through: the wait is over for everyone. */
	async noteSuccess() {
		if (!this.retry && this.backoff.failures === 0) return;
		this.retry = null;
		this.backoff.reset();
		this.setState({ retryAt: null });
		for (const resolve of this.reachableWaiters.splice(0)) resolve();
		await this.saveRetry();
	}

	/* Back online or a new token: the next attempt is now, from the first
	 * step. */
	retryNow() {
		this.backoff.reset();
		if (this.retry) this.retry.at = Date.now();
		this.wake('retry');
	}

	/* Resolves once a round got through (at once when nothing failed) or
	 * `signal` aborted. */
	untilReachable(signal) {
		return new Promise(resolve => {
			if (!this.retry || signal.aborted) return resolve();
			this.reachableWaiters.push(resolve);
			signal.addEventListener('abort', resolve, { once: true });
		});
	}

	async saveRetry() {
		try {
			const db = this.db || (await this.connection());
			if (!db) return;
			const tx = rawTransaction(db, [META], 'readwrite', RELAXED);
			silentTransactions.add(tx);
			const meta = native.txObjectStore.call(tx, META);
			if (this.retry) native.put.call(meta, this.retry, 'retry');
			else native.delete.call(meta, 'retry');
			await finished(tx);
		} catch {
			/* the wait still holds in this tab */
		}
	}

	async loadRetry() {
		try {
			const db = await this.connection();
			if (!db) return;
			const saved = await done(native.txObjectStore.call(rawTransaction(db, [META], 'readonly'), META).get('retry'));
			if (!saved || typeof saved.at !== 'number') return;
			this.retry = saved;
			this.backoff.failures = saved.failures;
			this.setState({ retryAt: saved.at });
		} catch {
			/* nothing saved: no wait */
		}
	}

	fromOtherTab(msg) {
		if (!msg || typeof msg !== 'object') return;
		if (msg.type === 'dirty') this.wake();
		else if (msg.type === 'status' && !this.state.leader) {
			const { leader, ...rest } = msg.status;
			void leader;
			this.setState(rest);
		} else if (msg.type === 'change') this.emit('change', msg.changes);
		else if (msg.type === 'state') this.emit('state', msg.detail);
		else if (msg.type === 'conflict') this.emit('conflict', msg.detail);
	}

	broadcast(type, detail) {
		this.emit(type, detail);
		const payload = type === 'change' ? { type, changes: detail } : { type, detail };
		try {
			channelFor(this.database)?.postMessage(payload);
		} catch {
			/* values that cannot be cloned stay in this tab */
		}
	}

	/* Asks for the Web Lock; holding it, this tab leads. The lock is given
	 * back when lead() ends or, sooner, when releaseLeadership() is called:
	 * a page being frozen runs no more tasks after its freeze event, so
	 * waiting there for the cycle to wind down would keep the lock (and
	 * every other tab without sync) for as long as the page stays frozen.
	 * A cycle still under way when the lock went back acknowledges and
	 * applies nothing more (checkLead), and the next lead of this tab
	 * starts only after it ended. */
	seekLeadership() {
		if (this.stopped || this.leaderController) return;
		const controller = (this.leaderController = new AbortController());
		this.leaderSignal = controller.signal;
		const locks = this.useLock && typeof navigator === 'object' && navigator?.locks;
		const previous = this.leading || Promise.resolve();
		const lead = () => {
			const run = (this.leading = previous.catch(() => {}).then(() => (controller.signal.aborted ? undefined : this.lead(controller.signal))));
			return run;
		};
		if (!locks) {
			lead();
			return;
		}
		locks.request('idbmount-sync:' + this.url + ':' + this.database, { signal: controller.signal }, () => new Promise(resolve => {
			controller.releaseLock = resolve;
			lead().then(resolve, resolve);
		})).catch(() => {
			/* aborted while waiting: the page was hidden or sync stopped */
		});
	}

	releaseLeadership() {
		const c = this.leaderController;
		this.leaderController = null;
		leadingHere.delete(this.database); /* another tab may lead at once: it needs the news */
		if (c) {
			c.abort();
			c.releaseLock?.();
		}
	}

	/* Throws when the cycle under way no longer belongs to a leading tab
	 * (the lock went back: hidden, frozen, stopped): another tab may be
	 * syncing now, so this one writes nothing more of the sync's own. What
	 * it pushed stays pending and is pushed again with the same ids. */
	checkLead() {
		if (this.cycleSignal?.aborted) throw new SyncError('local', 'this tab let go of sync in the middle of a cycle');
	}

	/* The syncing tab's life: runs until `signal` aborts (hidden, frozen,
	 * stopped); the Web Lock is held exactly as long. */
	async lead(signal) {
		this.setState({ leader: true });
		leadingHere.add(this.database);
		this.runsWritten = null; /* another tab may have led meanwhile and left runs */
		this.wakePending = true;
		await this.loadRetry(); /* a step another tab or page began */
		const events = followEvents(this, signal);
		try {
			while (!signal.aborted) {
				if (this.retry && this.retry.at > Date.now()) {
					await this.waitForWake(this.retry.at - Date.now(), true);
					if (signal.aborted) break;
				}
				try {
					if (await this.cycle()) await this.noteSuccess();
					if (this.state.lastError) this.setState({ lastError: null });
					/* Revision runs are folded once nothing happened for a
					 * moment, so the fold does not hold up a push. */
					if (this.runsWritten === false) await this.waitForWake(30000);
					else if (await this.waitForWake(FOLD_IDLE_MS)) {
						await this.foldRevisions(true);
						if (this.runsWritten === false) await this.waitForWake(30000);
					}
				} catch (err) {
					if (signal.aborted) break;
					const e = this.reportError(err);
					if (e.kind === 'auth' || e.kind === 'forbidden') {
						/* Nothing to do until setToken() gives a new token. */
						this.authBlocked = true;
						await this.waitForWake(3600e3, true);
					} else {
						await this.noteFailure();
					}
				}
			}
		} finally {
			await events.catch(() => {});
			leadingHere.delete(this.database);
			/* The connection stays: this tab still shows states. */
			this.setState({ leader: false, syncing: false });
		}
	}

	/* --- HTTP ------------------------------------------------------------ */

	async request(method, path, body) {
		if (this.authBlocked) throw new SyncError('auth', 'the token was refused (401); call setToken() with a new one', { status: 401 });
		let res;
		try {
			res = await this.fetchImpl(this.url + path, {
				method,
				headers: { Authorization: 'Bearer ' + this.token, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
				body: body !== undefined ? jsonBody(body) : undefined,
				signal: this.cycleSignal ?? (this.leaderController ? this.leaderSignal : undefined),
			});
		} catch (err) {
			if (this.state.online) this.setState({ online: false });
			throw new SyncError('offline', 'cannot reach the server: ' + (err?.message || err));
		}
		if (!this.state.online) this.setState({ online: true });
		this.answers += 1;
		let json = null;
		try {
			json = await res.json();
		} catch {
			json = null;
		}
		if (res.ok) return json;
		const detail = json && typeof json === 'object' ? json : null;
		const what = detail ? `${detail.error || ''}${detail.detail ? ': ' + detail.detail : ''}` : res.statusText;
		const kind = res.status === 401 ? 'auth' : res.status === 403 ? 'forbidden' : res.status === 413 ? 'too-large'
			: res.status === 429 || res.status >= 500 ? 'server' : 'client';
		throw new SyncError(kind, `${method} /${path.split('?')[0]} answered ${res.status} ${what}`, { status: res.status, detail });
	}

	/* --- local database ---------------------------------------------------- */

	/* The sync's own connection, raw (real version, internal stores), or
	 * null while the database does not exist: the sync never creates it, or
	 * a drop-in app would get an upgrade from version 1 instead of 0. The
	 * app's first captured write wakes the sync. */
	async connection() {
		if (this.db) return this.db;
		const info = await lookAtDatabase(indexedDB, this.database);
		if (!info.exists) return null;
		const raw = rawOf(await openRequest(indexedDB.open(this.database)));
		this.schemaSent = false; /* a new connection may see new stores */
		raw.onclose = () => {
			if (this.db === raw) this.db = null;
		};
		raw.onversionchange = () => {
			raw.close();
			if (this.db === raw) this.db = null;
		};
		this.db = raw;
		return raw;
	}

	/* The app's stores that sync: neither internal nor excluded. */
	storeNames(db) {
		return realStoreNames(db).filter(n => !isInternalStoreName(n) && !isExcluded(this.database, n));
	}

	/* --- one round: schema, push everything, pull everything --------------- */

	/* Resolves true when the server answered in this round (a round of a
	 * database that does not exist yet asks it nothing). */
	async cycle() {
		/* The signal of the lead this cycle runs under; none for a cycle
		 * called directly on a Sync that does not lead (tests, tools). */
		this.cycleSignal = this.leaderController ? this.leaderSignal : null;
		this.setState({ syncing: true });
		const answersBefore = this.answers;
		let blocked = false;
		try {
			/* While an upgrade is blocked every open of the database waits
			 * behind it (IndexedDB's rule), so the sync waits too. */
			if (this.upgradeWait) await this.upgradeWait;
			const db = await this.connection();
			if (!db) return false;
			if (this.installId === null) await this.loadMeta();
			if (!this.schemaSent) await this.sendSchema(db);
			if ((blocked = !!this.upgradeWait)) return this.answers > answersBefore;
			await pushAll(this);
			await pullAll(this);
			if ((blocked = !!this.upgradeWait)) return this.answers > answersBefore;
			await applyParked(this);
			return this.answers > answersBefore;
		} finally {
			this.setState({ syncing: false, outbox: blocked ? this.state.outbox : await this.outboxLength().catch(() => null) });
		}
	}

	async loadMeta() {
		const db = await this.connection();
		const tx = rawTransaction(db, [META], 'readonly');
		const meta = native.txObjectStore.call(tx, META);
		const [checkpoint, delivered, epoch, installId] = await Promise.all([done(meta.get('checkpoint')), done(meta.get('delivered')),
			done(meta.get('epoch')), done(meta.get('installId'))]);
		this.installId = installId;
		if (!this.installId) {
			/* Made once per database: prefixes the ids of journal writes. */
			const bytes = new Uint8Array(12);
			crypto.getRandomValues(bytes);
			this.installId = bytesToBase64url(bytes);
			await this.saveMeta({ installId: this.installId });
		}
		this.setState({ checkpoint: checkpoint ?? 0, delivered: delivered ?? null, epoch: epoch ?? null });
	}

	async saveMeta(values) {
		const db = await this.connection();
		const tx = rawTransaction(db, [META], 'readwrite');
		silentTransactions.add(tx);
		for (const [k, v] of Object.entries(values)) native.put.call(native.txObjectStore.call(tx, META), v, k);
		await finished(tx);
	}

	async sendSchema(db) {
		const tx = rawTransaction(db, this.storeNames(db).length ? this.storeNames(db) : [META], 'readonly');
		const stores = this.storeNames(db).map(name => {
			const s = tx.objectStore(name);
			return {
				name,
				keyPath: s.keyPath,
				autoIncrement: s.autoIncrement,
				indexes: Array.from(s.indexNames, ix => {
					const i = s.index(ix);
					return { name: ix, keyPath: i.keyPath, unique: i.unique, multiEntry: i.multiEntry };
				}),
			};
		});
		const answer = await this.request('POST', 'v1/schema', { db: this.database, version: appVersionOf(realVersion(db)), stores });
		this.schemaSent = true;
		/* A server that answers with its own store list lets stores made on
		 * the mount arrive with their keyPath before any record does. */
		if (answer && Array.isArray(answer.stores)) {
			const here = realStoreNames(db);
			const missing = answer.stores.filter(s => s && typeof s.name === 'string' && !isInternalStoreName(s.name)
				&& !isExcluded(this.database, s.name) && !here.includes(s.name));
			if (missing.length) await createServerStores(this, missing, 'the server has these stores');
		}
	}

	/* The steps of a round that live in push.js and pull.js, as methods:
	 * the pipeline calls them through the Sync, so a tool can time each one
	 * (tests/bench/profile_browser.mjs) and a test can drive one. */

	/* One page of the pull; resolves true when the server has more. */
	pullPage() {
		return pullPage(this);
	}

	/* Compacts the journal into the outbox when it holds an edit storm, or
	 * always with `all`. */
	compact(all = false, records = null) {
		return compact(this, all, records);
	}

	readBatch(compacted = false, exclude = null) {
		return readBatch(this, compacted, exclude);
	}

	encodeBatch(batch) {
		return encodeBatch(this, batch);
	}

	acknowledge(batch, results) {
		return acknowledge(this, batch, results);
	}

	applyChanges(changes, checkpoint, delivered, parked = false) {
		return applyChanges(this, changes, checkpoint, delivered, parked);
	}
}
