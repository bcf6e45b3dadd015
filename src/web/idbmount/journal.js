/* journal.js - recording the writes of a captured transaction.
 *
 * Every write to a captured database (put, add, delete, clear through
 * IDBObjectStore, update and delete through IDBCursor; capture.js patches
 * them to call note()) is recorded IN THE SAME transaction: ONE record
 * listing what the writes of a task or event touched is appended to the
 * journal store of the same database, in a microtask right behind them
 * (see note/flushCapture), so it rides to the database with the app's own
 * requests instead of costing a round trip of its own; a cursor loop's
 * writes make one record when the loop ends. Old values are never read. An
 * entry is a [store, key] pair where the key is known when the write is
 * made (given, or at the store's key path), else a "key set" the sync
 * resolves into keys later (outbox.js, keysOfSet):
 * clear() and key-range deletes (the keys the server is known to hold
 * there) and keys made by a store's key generator (the new number keys the
 * server does not know); so no write waits for a read. A journal record is
 * deleted only in the transaction that records the server's answer or
 * moves it into the outbox. Writes in upgrade transactions are captured
 * too, so seed and migrated data sync. Stores named in excludeStores are
 * never captured nor synced.
 *
 * A put's entry also carries its value as the JSON text a push sends
 * ([store, key, text], encoded as put() is called, as IndexedDB clones
 * it), so the push need not read the record back: that read, in a
 * transaction over the app's stores, held up the app's own writes while
 * it ran (decision: pushing the value as written, not as it is when the
 * push reads it, is as true: a later write has an entry of its own, pushed
 * after). Only where the write cannot fail once put() has returned: not
 * add() (its key may exist), not a store with a unique index, not in an
 * upgrade (which may add one), not a value holding Blobs (they are read
 * asynchronously); every other write pushes what its record holds at push
 * time.
 */
import { JOURNAL, native, capturedDatabases, silentTransactions, isInternalStoreName, isExcluded } from './raw.js';
import { announceDirty, refusedListeners } from './tabs.js';
import { encodeValueText } from './codec.js';

export const txContexts = new WeakMap(); /* IDBTransaction -> capture context or null */

/* The capture context of a transaction, or null when its writes are not
 * captured: {tx, journal, dbName, entries, flushQueued, stores}. */
function captureContext(tx) {
	let ctx = txContexts.get(tx);
	if (ctx !== undefined) return ctx;
	ctx = null;
	const db = tx.db;
	if (!silentTransactions.has(tx) && tx.mode !== 'readonly' && capturedDatabases.has(db)) {
		let journal = null;
		try {
			journal = native.txObjectStore.call(tx, JOURNAL);
		} catch {
			journal = null; /* only excluded stores: see the transaction patch */
		}
		if (journal) ctx = { tx, journal, dbName: db.name, entries: [], flushQueued: false, stores: new Map(), cursors: null, heard: null };
	}
	txContexts.set(tx, ctx);
	return ctx;
}

/* Makes `db` a captured connection. A full disk aborts an app's
 * transaction as a whole (its writes and their journal record together):
 * nothing half-written to sync, but the app's Sync says so as an event,
 * since a drop-in app may not look at its transactions' errors. A
 * transaction's abort event reaches its connection (it bubbles): one
 * listener per connection, not one per transaction. */
export function adoptConnection(db) {
	if (capturedDatabases.has(db)) return;
	capturedDatabases.add(db);
	db.addEventListener('abort', ev => {
		const tx = ev.target;
		if (txContexts.get(tx) && tx.error && tx.error.name === 'QuotaExceededError')
			for (const cb of refusedListeners.get(db.name) || []) cb(tx.error);
	});
}

/* What capture needs to know of a store, once per transaction: whether its
 * writes are left out, and how a value's key is found. */
function storeInfo(ctx, store) {
	let info = ctx.stores.get(store);
	if (!info) {
		const name = store.name;
		const keyPath = store.keyPath;
		info = {
			name,
			skip: isInternalStoreName(name) || isExcluded(ctx.dbName, name),
			keyPath: keyPath === null ? null : Array.isArray(keyPath) ? keyPath.map(p => p.split('.')) : keyPath.split('.'),
			/* A put can fail after the call only on a unique index; an
			 * upgrade may add one after this is looked at, so values do
			 * not travel in upgrades (their writes are read at push time). */
			valuesTravel: ctx.tx.mode !== 'versionchange' && !Array.from(store.indexNames).some(n => store.index(n).unique),
		};
		ctx.stores.set(store, info);
	}
	return info;
}

/* A key path evaluated as IndexedDB does (on the value given, which the
 * request cloned as it was): undefined when the value has no key there. */
function evaluateKeyPath(value, path) {
	if (Array.isArray(path[0])) {
		const key = [];
		for (const part of path) {
			const k = evaluateKeyPath(value, part);
			if (k === undefined) return undefined;
			key.push(k);
		}
		return key;
	}
	let v = value;
	for (const name of path) {
		if (name === '') continue;
		if (v === null || (typeof v !== 'object' && typeof v !== 'string')) return undefined;
		v = v[name];
		if (v === undefined) return undefined;
	}
	return v;
}

/* Notes one write of `store` in its transaction's journal record: a
 * [store, key] pair, or a key set ({store, op: "clear" | "range" |
 * "generated"}) that the sync resolves into keys later (see keysOfSet).
 * The record is written in a microtask, right behind the writes the app
 * made in the same task or event: it travels with them to the database
 * instead of waiting for their answers, so a transaction of one write
 * costs one more small put in the same round trip, not one more round
 * trip. `cursorRequest`: the request of the cursor that wrote (see
 * flushCapture). */
export function note(store, entry, cursorRequest = null) {
	const ctx = captureContext(store.transaction);
	if (!ctx) return;
	const info = storeInfo(ctx, store);
	if (info.skip) return;
	ctx.entries.push(typeof entry === 'function' ? entry(info) : entry);
	if (cursorRequest) (ctx.cursors ??= new Set()).add(cursorRequest);
	if (!ctx.flushQueued) {
		ctx.flushQueued = true;
		queueMicrotask(() => flushCapture(ctx));
	}
}

/* Writes the noted entries as ONE journal record, inside the transaction
 * (still active: microtasks run before IndexedDB deactivates it). A cursor
 * loop's writes wait while the cursor that wrote is moving on (its request
 * pending again: continue() was called): the transaction cannot end before
 * that request's next event, where they are looked at again (a listener
 * of ours, after the app's own). So a loop over 1,000 records writes one
 * record at its end, not one per step. `now` (commit()) writes at once.
 * Should the record be refused, the transaction is aborted: a write never
 * commits without its journal record. */
export function flushCapture(ctx, now = false) {
	ctx.flushQueued = false;
	if (!ctx.entries.length) return;
	if (!now && ctx.cursors)
		for (const request of ctx.cursors)
			if (request.readyState === 'pending') {
				/* (Re-)added each time, so it stays behind the listener an
				 * app adds for each step (a promise per step, as the idb
				 * library makes): the step's writes are in by then. */
				const listening = (ctx.heard ??= new Map());
				const before = listening.get(request);
				if (before) {
					request.removeEventListener('success', before);
					request.removeEventListener('error', before);
				}
				const again = () => flushCapture(ctx);
				listening.set(request, again);
				request.addEventListener('success', again);
				request.addEventListener('error', again);
				return;
			}
	const entries = ctx.entries;
	ctx.entries = [];
	try {
		native.put.call(ctx.journal, entries);
	} catch (err) {
		try {
			ctx.tx.abort();
		} catch {
			/* it is over already (the app aborted it): nothing committed */
		}
		return;
	}
	announceDirty(ctx.dbName);
}

/* The entry of a put or add: its key when it is known now (given, or
 * found at the store's key path), else the store's generated-keys set;
 * with `withValue` (a put) and where the store allows, the value's push
 * text too (see above). */
export function putEntry(info, value, key, withValue = false) {
	if (key === undefined && info.keyPath !== null) key = evaluateKeyPath(value, info.keyPath);
	if (key === undefined) return { store: info.name, op: 'generated' };
	if (withValue && info.valuesTravel) {
		try {
			const text = encodeValueText(value);
			if (text !== null) return [info.name, key, text];
		} catch {
			/* not encodable: the push reads it and says why */
		}
	}
	return [info.name, key];
}

export function cursorStore(cursor) {
	const source = cursor.source;
	return typeof source.objectStore === 'object' && source.objectStore ? source.objectStore : source;
}
