/* capture.js - drop-in capture: patches the IndexedDB prototypes once so
 * that every write to a captured database is recorded in its own
 * transaction (journal.js), and opening one goes through openCaptured
 * (versions.js), which adds the internal stores and hides them.
 */
import { JOURNAL, native, capturedDatabases, exclusions, isInternalStoreName, isExcluded, notFound } from './raw.js';
import { txContexts, note, flushCapture, putEntry, cursorStore } from './journal.js';
import { hideInternals, openCaptured } from './versions.js';

let captureFilter = null;        /* null: capture nothing; else name => bool */
const capturedNames = new Set(); /* names opened with openDatabase() */
let captureInstalled = false;

function installPatches() {
	if (captureInstalled) return;
	const G = globalThis;
	for (const n of ['IDBFactory', 'IDBDatabase', 'IDBTransaction', 'IDBObjectStore', 'IDBCursor'])
		if (typeof G[n] !== 'function') throw new Error('idbmount: this environment has no ' + n);
	const F = G.IDBFactory.prototype;
	const D = G.IDBDatabase.prototype;
	const T = G.IDBTransaction.prototype;
	const S = G.IDBObjectStore.prototype;
	const C = G.IDBCursor.prototype;
	Object.assign(native, {
		open: F.open,
		databases: F.databases,
		transaction: D.transaction,
		deleteObjectStore: D.deleteObjectStore,
		txObjectStore: T.objectStore,
		commit: T.commit,
		put: S.put,
		add: S.add,
		delete: S.delete,
		clear: S.clear,
		getAllKeys: S.getAllKeys,
		cursorUpdate: C.update,
		cursorDelete: C.delete,
	});
	hideInternals(G, native, name => !!captureFilter && captureFilter(name));

	F.open = function open(name, version) {
		if (captureFilter && captureFilter(String(name))) return openCaptured(this, name, version);
		return native.open.apply(this, arguments);
	};
	/* Every read-write transaction of a captured database also holds the
	 * journal, so the record of its keys commits (or aborts) with it;
	 * unless all its stores are excluded. */
	D.transaction = function transaction(storeNames, mode, options) {
		if (!capturedDatabases.has(this)) return native.transaction.apply(this, arguments);
		const names = typeof storeNames === 'string' ? [storeNames] : Array.from(storeNames);
		for (const n of names) if (isInternalStoreName(n)) throw notFound(`transaction("${n}")`);
		if (mode === 'readwrite' && (!exclusions.length || names.some(n => !isExcluded(this.name, n)))) names.push(JOURNAL);
		return arguments.length > 2 ? native.transaction.call(this, names, mode, options) : native.transaction.call(this, names, mode);
	};
	if (typeof native.commit === 'function') {
		T.commit = function commit() {
			/* Entries noted in this task: their record goes first. */
			const ctx = txContexts.get(this);
			if (ctx && ctx.entries.length) flushCapture(ctx, true);
			return native.commit.call(this);
		};
	}
	S.put = function put(value, key) {
		const req = native.put.apply(this, arguments);
		note(this, info => putEntry(info, value, key, true));
		return req;
	};
	S.add = function add(value, key) {
		const req = native.add.apply(this, arguments);
		note(this, info => putEntry(info, value, key));
		return req;
	};
	S.delete = function del(query) {
		const req = native.delete.apply(this, arguments);
		if (typeof IDBKeyRange === 'function' && query instanceof IDBKeyRange)
			note(this, info => ({ store: info.name, op: 'range', lower: query.lower, upper: query.upper, lowerOpen: query.lowerOpen, upperOpen: query.upperOpen }));
		else note(this, info => [info.name, query]);
		return req;
	};
	S.clear = function clear() {
		const req = native.clear.apply(this, arguments);
		note(this, info => ({ store: info.name, op: 'clear' }));
		return req;
	};
	C.update = function update() {
		const req = native.cursorUpdate.apply(this, arguments);
		const key = this.primaryKey;
		note(cursorStore(this), info => [info.name, key], this.request);
		return req;
	};
	C.delete = function del() {
		const key = this.primaryKey;
		const req = native.cursorDelete.apply(this, arguments);
		note(cursorStore(this), info => [info.name, key], this.request);
		return req;
	};
	captureInstalled = true;
}

/* captureIndexedDB({databases, excludeStores}) - drop-in capture for an app
 * that uses the plain IndexedDB API. Call it once, before the app opens its
 * database. `databases`: an array of names or a predicate; omitted: every
 * database. `excludeStores`: store names (of those databases) or a
 * predicate (storeName, dbName) => boolean, for stores that must neither
 * be captured nor synced (a library's helper stores): they never reach the
 * server nor the mount, and changes the server has for them are ignored.
 * From then on indexedDB.open() of such a database returns a connection
 * whose writes are captured; the app's versions and upgrade code work as
 * before (see versions.js for how). */
export function captureIndexedDB({ databases, excludeStores } = {}) {
	installPatches();
	const previous = captureFilter;
	let mine;
	if (databases === undefined) mine = () => true;
	else if (typeof databases === 'function') mine = databases;
	else {
		const set = new Set(Array.from(databases, String));
		mine = n => set.has(n);
	}
	captureFilter = n => capturedNames.has(n) || mine(n) || (previous ? previous(n) : false);
	if (typeof excludeStores === 'function') exclusions.push((dbName, storeName) => mine(dbName) && !!excludeStores(storeName, dbName));
	else if (excludeStores !== undefined) {
		const set = new Set(Array.from(excludeStores, String));
		exclusions.push((dbName, storeName) => mine(dbName) && set.has(storeName));
	}
}

export function ensureCaptureOf(name) {
	installPatches();
	capturedNames.add(name);
	if (!captureFilter) captureFilter = n => capturedNames.has(n);
}
