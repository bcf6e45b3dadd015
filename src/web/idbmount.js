/* idbmount.js - keeps a browser's IndexedDB in sync with an idbmount daemon.
 *
 * One plain ES module, no build step; the daemon serves it at /idbmount.js.
 * Three layers, each usable on its own:
 *
 *   capture   Patches the IndexedDB prototypes once (captureIndexedDB()) so
 *             that every write to a captured database - put, add, delete,
 *             clear through IDBObjectStore, update and delete through
 *             IDBCursor - is recorded IN THE SAME transaction: ONE record
 *             listing what the writes of a task or event touched is
 *             appended to the journal store of the same database, in a
 *             microtask right behind them (see note/flushCapture), so it
 *             rides to the database with the app's own requests instead of
 *             costing a round trip of its own; a cursor loop's writes make
 *             one record when the loop ends. Values are not copied and old
 *             values are never read; the value that is pushed is whatever
 *             the record holds at push time. An entry is a [store, key]
 *             pair where the key is known when the write is made (given,
 *             or at the store's key path), else a "key set" the sync
 *             resolves into keys later (keysOfSet): clear() and key-range
 *             deletes (the keys the server is known to hold there) and
 *             keys made by a store's key generator (the new number keys
 *             the server does not know); so no write waits for a read.
 *             The sync pushes straight from journal records (each write's
 *             mutation id is "<install id>.<journal key>.<index>", the same
 *             on every retry; a key written twice in a batch goes once).
 *             When the journal holds an edit storm (over 64 records) or key
 *             sets it is first compacted into the outbox, which holds ONE
 *             marker per key ([store, key] -> {id}), so the storm ships
 *             once; rejected writes and conflicts to push again live there
 *             too. A journal record is deleted only in the transaction that
 *             records the server's answer or moves it into the outbox.
 *             Writes in upgrade transactions are captured too, so seed and
 *             migrated data sync. Stores named in excludeStores are never
 *             captured nor synced.
 *   library   openDatabase(name, {version, stores}) - a promise API (put,
 *             add, delete, clear, get, getAll, each/cursors, transactions
 *             over several stores) built on the same captured IndexedDB.
 *   sync      startSync({database, url, token}) - pushes pending writes in
 *             batches, pulls with a persisted checkpoint, follows
 *             /v1/events, one syncing tab per database.
 *
 * How the outbox gets into an existing database (decision): it must live in
 * the same database, or a write and its marker could not commit together.
 * The real IndexedDB version of a captured database is therefore
 *     real = appVersion * VERSION_FACTOR + generation     (VERSION_FACTOR 1024)
 * and indexedDB.open(name, appVersion) is intercepted: it looks at the
 * database first (indexedDB.databases(), then a plain open), opens it at the
 * real version it needs, creates the internal stores in the upgrade
 * transaction and forwards upgradeneeded to the app only when the APP's
 * version changed, with the app's oldVersion/newVersion. When the library
 * needs an upgrade of its own (adding the outbox to a database that existed
 * before capture, or creating a store that was made on the server) it bumps
 * `generation` and the app sees no upgradeneeded. A database that has no
 * outbox store yet is "legacy": its real version is the app's version. When
 * the outbox is added to a legacy database, every record already in it is
 * marked dirty in that same upgrade, so existing data syncs too.
 * The app sees none of this (hideInternals): the IDBDatabase and
 * IDBTransaction getters of objectStoreNames and version, the versions of
 * versionchange events and of indexedDB.databases() are patched to show the
 * app's stores and versions on every path (transaction.db, request.source,
 * event targets, cursors), and a transaction, objectStore() or
 * deleteObjectStore() of an internal store fails as for a store that does
 * not exist. Where those attributes are data properties of each object
 * instead of prototype getters (fake-indexeddb in Node), the connection
 * open() returns is a Proxy doing the same for the connection only.
 *
 * Internal stores (all named "__idbmount_*", never synced):
 *   __idbmount_journal (auto key) -> [[store, key] | {store, op, ...}, ...]
 *                      what captured transactions wrote (pairs and key
 *                      sets); the only internal store that app
 *                      transactions include
 *   __idbmount_outbox  [store, key] -> {id, rejected?}   pending writes
 *   __idbmount_revs    [store, key] -> {rev, seq, deleted} last server state
 *                      the local value is based on ("base" of a push);
 *                      [0, n] -> {store, keys, revs, seqs, deleted} the
 *                      same for a whole acknowledged batch (a "run", see
 *                      revisionsOf), newest revision wins
 *   __idbmount_meta    "checkpoint", "delivered", "epoch", "installId",
 *                      "retry" (a backoff step under way, see noteFailure),
 *                      ["parked", store, key] (changes for missing stores),
 *                      ["generated", store] (see keysOfSet)
 *
 * Values JSON cannot hold travel in the tagged forms of src/DESIGN.md
 * ("Tagged JSON"), inside values too (see encodeValue): Date {"~d": iso},
 * ArrayBuffer {"~b": b64url}, typed arrays and DataView {"~b": ...,
 * "type": "Uint8Array"} (a constructor name never contains "/"), Blob/File
 * {"~b": ..., "type": "<mime>"} (a MIME type always does, or is ""),
 * NaN/Infinity/-Infinity/-0 {"~n": "NaN"}, undefined {"~u": true}; a
 * property name of a plain object that starts with "~" gets one more "~"
 * so no user object is read as a tag. Keys use the key codec of src/key.c:
 * numbers (infinities as {"~n": ...}), strings, {"~d"}, {"~b"}, arrays.
 *
 * Conflicts (decision): the server's sequence decides. A push carries the
 * revision the local value was based on; when the server already has a
 * newer one it answers "conflict" with its current record, and the
 * `conflict` hook decides. The DEFAULT POLICY IS "server wins": the
 * server's current value replaces the local one, and a `conflict` event
 * carries the local value that lost, so nothing disappears silently. A hook
 * may return "local" (push the local value again on top of the server's
 * revision) or {value} (a merged value, pushed the same way).
 *
 * Event stream transport (decision): /v1/events is read with fetch() and a
 * small Server-Sent Events parser, because EventSource cannot send the
 * Authorization header and a token in the URL would end up in logs.
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
 * then takes over. Every tab still captures into the shared outbox, and a
 * BroadcastChannel ("idbmount:<db>") carries "dirty" (wake the syncing tab),
 * "change" (the server changed records) and "status" to the others.
 */

const INTERNAL_PREFIX = '__idbmount_';
const JOURNAL = '__idbmount_journal';
const OUTBOX = '__idbmount_outbox';
const REVS = '__idbmount_revs';
const META = '__idbmount_meta';
const INTERNAL_STORES = [JOURNAL, OUTBOX, REVS, META];

/* real version = app version * VERSION_FACTOR + library generation. 1024
 * leaves room for Date.now()-style app versions below 2^53. */
export const VERSION_FACTOR = 1024;

/* ------------------------------------------------------------------------
 * Tagged JSON: keys and values
 * --------------------------------------------------------------------- */

function bytesToBase64url(bytes) {
	let text = '';
	for (let i = 0; i < bytes.length; i += 0x8000)
		text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
	return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64urlToBytes(text) {
	if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text))
		throw new TypeError('idbmount: ~b must be base64url text');
	const std = text.replace(/-/g, '+').replace(/_/g, '/');
	const bin = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
	const bytes = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
	return bytes;
}

function viewBytes(v) {
	if (v instanceof ArrayBuffer) return new Uint8Array(v);
	return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/* encodeKey(key) -> the tagged JSON form of a valid IndexedDB key. */
export function encodeKey(key) {
	if (typeof key === 'number') {
		if (Number.isNaN(key)) throw new TypeError('idbmount: NaN is not a key');
		if (key === Infinity || key === -Infinity) return { '~n': key > 0 ? 'Infinity' : '-Infinity' };
		return key === 0 ? 0 : key;
	}
	if (typeof key === 'string') return key;
	if (key instanceof Date) return { '~d': key.toISOString() };
	if (key instanceof ArrayBuffer || ArrayBuffer.isView(key)) return { '~b': bytesToBase64url(viewBytes(key)) };
	if (Array.isArray(key)) return key.map(encodeKey);
	throw new TypeError('idbmount: not a valid key: ' + String(key));
}

/* decodeKey(tagged) -> the IndexedDB key (binary keys as ArrayBuffer). */
export function decodeKey(tagged) {
	if (typeof tagged === 'number' || typeof tagged === 'string') return tagged;
	if (Array.isArray(tagged)) return tagged.map(decodeKey);
	if (tagged && typeof tagged === 'object') {
		const names = Object.keys(tagged);
		if (names.length === 1) {
			const text = tagged[names[0]];
			if (names[0] === '~n' && (text === 'Infinity' || text === '-Infinity'))
				return text === 'Infinity' ? Infinity : -Infinity;
			if (names[0] === '~d' && typeof text === 'string') {
				const date = new Date(text);
				if (!Number.isNaN(date.getTime())) return date;
			}
			if (names[0] === '~b') return base64urlToBytes(text).buffer;
		}
	}
	throw new TypeError('idbmount: not a tagged key: ' + JSON.stringify(tagged));
}

const TYPED_ARRAYS = {};
for (const name of ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array',
	'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView']) {
	if (typeof globalThis[name] === 'function') TYPED_ARRAYS[name] = globalThis[name];
}

function isPlainObject(v) {
	const proto = Object.getPrototypeOf(v);
	return proto === Object.prototype || proto === null;
}

/* encodeValueSync(v, blobs) -> JSON-safe tagged value. Blobs cannot be read
 * synchronously: each one gets a placeholder object that is pushed to
 * `blobs` and filled in by encodeValue. */
function encodeValueSync(v, blobs, depth) {
	if (depth > 1000) throw new TypeError('idbmount: value nested too deeply');
	if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
	if (typeof v === 'number') {
		if (Number.isNaN(v)) return { '~n': 'NaN' };
		if (v === Infinity || v === -Infinity) return { '~n': v > 0 ? 'Infinity' : '-Infinity' };
		if (Object.is(v, -0)) return { '~n': '-0' };
		return v;
	}
	if (v === undefined) return { '~u': true };
	if (typeof v !== 'object') throw new TypeError('idbmount: cannot sync a value of type ' + typeof v);
	if (v instanceof Date) return { '~d': Number.isNaN(v.getTime()) ? null : v.toISOString() };
	if (v instanceof ArrayBuffer) return { '~b': bytesToBase64url(new Uint8Array(v)) };
	if (ArrayBuffer.isView(v)) return { '~b': bytesToBase64url(viewBytes(v)), type: v.constructor.name };
	if (typeof Blob === 'function' && v instanceof Blob) {
		const holder = { '~b': '', type: v.type };
		blobs.push({ blob: v, holder });
		return holder;
	}
	if (Array.isArray(v)) {
		const out = new Array(v.length);
		for (let i = 0; i < v.length; i++) out[i] = i in v ? encodeValueSync(v[i], blobs, depth + 1) : null;
		return out;
	}
	if (!isPlainObject(v)) throw new TypeError('idbmount: cannot sync a ' + (v.constructor?.name || 'object') + ' value');
	const out = {};
	for (const name of Object.keys(v)) {
		if (v[name] === undefined) continue; /* as JSON.stringify: an absent property */
		out[name.startsWith('~') ? '~' + name : name] = encodeValueSync(v[name], blobs, depth + 1);
	}
	return out;
}

/* encodeValue(v) -> Promise of the tagged JSON value (async for Blobs). */
export async function encodeValue(v) {
	const blobs = [];
	const out = encodeValueSync(v, blobs, 0);
	for (const { blob, holder } of blobs) holder['~b'] = bytesToBase64url(new Uint8Array(await blob.arrayBuffer()));
	return out;
}

/* decodeValue(tagged) -> the structured value encodeValue was given. */
export function decodeValue(t) {
	if (t === null || typeof t !== 'object') return t;
	if (Array.isArray(t)) return t.map(decodeValue);
	const names = Object.keys(t);
	if (names.length === 1 || (names.length === 2 && '~b' in t && typeof t.type === 'string')) {
		const text = t[names[0]];
		switch (names.length === 2 ? '~b' : names[0]) {
			case '~d':
				if (text === null) return new Date(NaN);
				if (typeof text === 'string') return new Date(text);
				break;
			case '~n':
				if (text === 'NaN') return NaN;
				if (text === 'Infinity') return Infinity;
				if (text === '-Infinity') return -Infinity;
				if (text === '-0') return -0;
				break;
			case '~u':
				return undefined;
			case '~b': {
				const bytes = base64urlToBytes(t['~b']);
				if (names.length === 1) return bytes.buffer;
				const ctor = TYPED_ARRAYS[t.type];
				if (ctor === DataView) return new DataView(bytes.buffer);
				if (ctor) return new ctor(bytes.buffer, 0, bytes.byteLength / ctor.BYTES_PER_ELEMENT);
				return new Blob([bytes], { type: t.type });
			}
		}
	}
	const out = {};
	for (const name of names) out[name.startsWith('~~') ? name.slice(1) : name] = decodeValue(t[name]);
	return out;
}

/* ------------------------------------------------------------------------
 * Capture: the prototype patches
 * --------------------------------------------------------------------- */

const native = {};                 /* the unpatched methods and attribute getters */
const capturedDatabases = new WeakSet(); /* raw IDBDatabase connections with an outbox */
const txContexts = new WeakMap();  /* IDBTransaction -> capture context or null */
const silentTransactions = new WeakSet(); /* the sync loop's own writes: not captured */
let captureFilter = null;          /* null: capture nothing; else name => bool */
const capturedNames = new Set();   /* names opened with openDatabase() */
const knownCaptured = new Set();   /* names this page opened with an outbox */
const exclusions = [];             /* (dbName, storeName) => bool: stores neither captured nor synced */
const requestedStores = new Map(); /* db name -> [store definitions] the sync wants created */
const dirtyListeners = new Map();  /* db name -> Set of callbacks (tab-local) */
const refusedListeners = new Map(); /* db name -> Set of callbacks(error) for captured transactions the browser refused (tab-local) */
let channels = new Map();          /* db name -> BroadcastChannel */
let mutationCounter = 0;
const sessionId = (() => {
	const bytes = new Uint8Array(9);
	crypto.getRandomValues(bytes);
	return bytesToBase64url(bytes);
})();

/* A mutation id is made when the write is captured and stays with the
 * marker until it is acknowledged, so a retried push is applied once. */
function newMutationId() {
	mutationCounter += 1;
	return sessionId + '-' + mutationCounter.toString(36);
}

function isInternalStoreName(name) {
	return typeof name === 'string' && name.startsWith(INTERNAL_PREFIX);
}

/* Whether store `storeName` of database `dbName` is left out of capture
 * and sync (captureIndexedDB's excludeStores). */
function isExcluded(dbName, storeName) {
	for (const excluded of exclusions) if (excluded(dbName, storeName)) return true;
	return false;
}

/* The app version inside a captured database's real version. */
function appVersionOf(real) {
	return Math.floor(real / VERSION_FACTOR);
}

/* What the library reads on a raw connection or transaction: the real
 * version and every store name, internal ones included (the app's getters
 * are patched, see hideInternals). */
function realVersion(db) {
	return native.dbVersion ? native.dbVersion.call(db) : db.version;
}

function realStoreNames(dbOrTx) {
	const getter = typeof IDBTransaction === 'function' && dbOrTx instanceof IDBTransaction ? native.txStoreNames : native.dbStoreNames;
	return Array.from(getter ? getter.call(dbOrTx) : dbOrTx.objectStoreNames);
}

const libraryTransactions = new WeakSet(); /* made by rawTransaction: internal stores reachable */

/* A transaction of the library's own: any stores, internal ones included,
 * never widened by capture. */
function rawTransaction(db, storeNames, mode = 'readonly', options = undefined) {
	const tx = options === undefined ? native.transaction.call(db, storeNames, mode) : native.transaction.call(db, storeNames, mode, options);
	libraryTransactions.add(tx);
	return tx;
}

function notFound(what) {
	const message = `idbmount: ${what}: no such object store`;
	return typeof DOMException === 'function' ? new DOMException(message, 'NotFoundError') : new Error(message);
}

function channelFor(dbName) {
	if (typeof BroadcastChannel !== 'function') return null;
	let ch = channels.get(dbName);
	if (!ch) {
		ch = new BroadcastChannel('idbmount:' + dbName);
		/* Node keeps the process alive for an open channel; browsers ignore it. */
		if (typeof ch.unref === 'function') ch.unref();
		channels.set(dbName, ch);
	}
	return ch;
}

/* Closes the channel of `dbName`; the next channelFor() opens a new one. A
 * page in the back/forward cache must not be reachable by one: Chromium
 * evicts a cached page that has a BroadcastChannel listener when a message
 * arrives. */
function closeChannel(dbName) {
	const ch = channels.get(dbName);
	if (!ch) return;
	ch.close();
	channels.delete(dbName);
}

const pendingDirty = new Set();
let dirtyTimer = null;
let lastDirtyAt = -Infinity;
/* At most one round of "dirty" news per this many ms: an app writing one
 * record per transaction would otherwise wake the sync (and post to the
 * other tabs) once per write, which measured as much as the journal
 * record itself. */
const DIRTY_INTERVAL_MS = 50;
const leadingHere = new Set(); /* databases this tab's Sync leads */

/* Tells this tab's Sync and the other tabs that the journal of `dbName`
 * grew: at once after a quiet moment, then at most once per
 * DIRTY_INTERVAL_MS while writes go on (the last ones are always told).
 * Sent when the journal record is written, before its transaction
 * commits: the sync's own transactions hold the journal too, so they run
 * after it. The other tabs are told only when this one does not sync the
 * database itself (only the syncing tab acts on it). */
function announceDirty(dbName) {
	pendingDirty.add(dbName);
	if (dirtyTimer !== null) return;
	dirtyTimer = setTimeout(() => {
		dirtyTimer = null;
		lastDirtyAt = Date.now();
		for (const name of pendingDirty) {
			for (const cb of dirtyListeners.get(name) || []) cb();
			if (!leadingHere.has(name)) channelFor(name)?.postMessage({ type: 'dirty' });
		}
		pendingDirty.clear();
	}, Math.max(0, lastDirtyAt + DIRTY_INTERVAL_MS - Date.now()));
}

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
function adoptConnection(db) {
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
function note(store, entry, cursorRequest = null) {
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
function flushCapture(ctx, now = false) {
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
 * found at the store's key path), else the store's generated-keys set. */
function putEntry(info, value, key) {
	if (key === undefined && info.keyPath !== null) key = evaluateKeyPath(value, info.keyPath);
	return key === undefined ? { store: info.name, op: 'generated' } : [info.name, key];
}

function cursorStore(cursor) {
	const source = cursor.source;
	return typeof source.objectStore === 'object' && source.objectStore ? source.objectStore : source;
}

/* A read-only view of store names without the internal ones, shaped like
 * the DOMStringList it stands for (length, item, contains, index access,
 * iteration, and instanceof DOMStringList where there is one). */
function visibleNames(list) {
	const names = Array.from(list).filter(n => !isInternalStoreName(n));
	if (typeof DOMStringList !== 'function') {
		const view = names.slice();
		view.item = i => (i >= 0 && i < names.length ? names[i] : null);
		view.contains = n => names.includes(n);
		return Object.freeze(view);
	}
	const view = Object.create(DOMStringList.prototype);
	names.forEach((n, i) => Object.defineProperty(view, i, { value: n, enumerable: true }));
	Object.defineProperties(view, {
		length: { value: names.length },
		item: { value: i => (i >= 0 && i < names.length ? names[i] : null) },
		contains: { value: n => names.includes(n) },
		[Symbol.iterator]: { value: () => names[Symbol.iterator]() },
	});
	return Object.freeze(view);
}

const appViews = new WeakMap(); /* raw connection -> Proxy shown to the app (see hideInternals) */
const rawConnections = new WeakMap(); /* Proxy -> raw connection */

/* The raw connection behind a connection handed out by open(). */
function rawOf(db) {
	return rawConnections.get(db) || db;
}

/* The connection the app gets from open(). Where IndexedDB's attributes
 * are accessors on the prototypes (browsers), it is the connection itself:
 * the patched getters show the app's version and no internal store, on
 * every path that leads to it (transaction.db, request.source, event
 * targets). Where they are plain data properties of each object
 * (fake-indexeddb in Node), a Proxy does that for the connection only. */
function appView(db) {
	if (native.dbStoreNames) return db;
	let view = appViews.get(db);
	if (view) return view;
	const bound = new Map();
	view = new Proxy(db, {
		get(target, prop) {
			if (prop === 'version') {
				const real = target.version;
				return capturedDatabases.has(target) ? appVersionOf(real) : real;
			}
			if (prop === 'objectStoreNames') return visibleNames(target.objectStoreNames);
			const v = Reflect.get(target, prop, target);
			if (typeof v !== 'function') return v;
			let fn = bound.get(prop);
			if (!fn || fn.original !== v) {
				fn = v.bind(target);
				fn.original = v;
				bound.set(prop, fn);
			}
			return fn;
		},
		set(target, prop, value) {
			return Reflect.set(target, prop, value, target);
		},
	});
	appViews.set(db, view);
	rawConnections.set(view, db);
	return view;
}

function ownValue(value) {
	return { value, writable: true, enumerable: true, configurable: true };
}

/* An IDBOpenDBRequest look-alike, returned at once by the intercepted
 * open() while the real open waits for the look at the database. In
 * browsers it is an instance of IDBOpenDBRequest (its prototype chain is
 * set in installPatches), since libraries test for that (the idb library
 * promisifies only `instanceof IDBRequest`); its attributes are its own
 * properties. An exception thrown by an upgradeneeded listener aborts the
 * upgrade, as for a real request. */
class CapturedOpenRequest extends EventTarget {
	#wrapped = new Map();
	#threw = false;

	constructor() {
		super();
		Object.defineProperties(this, {
			result: ownValue(undefined),
			error: ownValue(null),
			readyState: ownValue('pending'),
			source: ownValue(null),
			transaction: ownValue(null),
			onsuccess: ownValue(null),
			onerror: ownValue(null),
			onupgradeneeded: ownValue(null),
			onblocked: ownValue(null),
		});
	}

	#invoke(listener, ev) {
		try {
			if (typeof listener === 'function') listener.call(this, ev);
			else listener.handleEvent(ev);
		} catch (err) {
			this.#threw = true;
			if (typeof reportError === 'function') reportError(err);
			else queueMicrotask(() => {
				throw err;
			});
		}
	}

	addEventListener(type, listener, options) {
		if (!listener || (typeof listener !== 'function' && typeof listener.handleEvent !== 'function'))
			return super.addEventListener(type, listener, options);
		let wrapper = this.#wrapped.get(listener);
		if (!wrapper) {
			wrapper = ev => this.#invoke(listener, ev);
			this.#wrapped.set(listener, wrapper);
		}
		return super.addEventListener(type, wrapper, options);
	}

	removeEventListener(type, listener, options) {
		return super.removeEventListener(type, this.#wrapped.get(listener) || listener, options);
	}

	settle(props) {
		Object.assign(this, props);
	}

	/* Dispatches `type` to the listeners, then the on<type> handler;
	 * returns false when one of them threw. */
	fire(type, versions = null) {
		let ev;
		if (versions && typeof IDBVersionChangeEvent === 'function' && Event.prototype.isPrototypeOf(IDBVersionChangeEvent.prototype)) {
			ev = new IDBVersionChangeEvent(type, versions);
		} else {
			ev = new Event(type, { bubbles: type === 'error', cancelable: type === 'error' });
			for (const [k, v] of Object.entries(versions || {})) Object.defineProperty(ev, k, { value: v });
		}
		this.#threw = false;
		this.dispatchEvent(ev);
		const handler = this['on' + type];
		if (typeof handler === 'function') this.#invoke(handler, ev);
		return !this.#threw;
	}
}

/* What is in database `name`: {exists, real, hasOutbox, storeNames}. */
function lookAtDatabase(factory, name) {
	return new Promise((resolve, reject) => {
		const openIt = () => {
			const req = native.open.call(factory, name);
			let created = false;
			req.onupgradeneeded = () => {
				created = true; /* it did not exist: undo the creation */
				req.transaction.abort();
			};
			req.onsuccess = () => {
				const db = req.result;
				const storeNames = realStoreNames(db);
				const info = { exists: true, real: realVersion(db), hasOutbox: storeNames.includes(OUTBOX), storeNames };
				db.close();
				resolve(info);
			};
			req.onerror = ev => {
				ev.preventDefault?.();
				if (created) resolve({ exists: false, real: 0, hasOutbox: false, storeNames: [] });
				else reject(req.error);
			};
		};
		if (typeof native.databases === 'function') {
			native.databases.call(factory).then(list => {
				if (list.some(d => d.name === name)) openIt();
				else resolve({ exists: false, real: 0, hasOutbox: false, storeNames: [] });
			}, openIt);
		} else {
			openIt();
		}
	});
}

function createStore(db, def) {
	const params = { autoIncrement: !!def.autoIncrement };
	if (def.keyPath !== null && def.keyPath !== undefined) params.keyPath = def.keyPath;
	const store = db.createObjectStore(def.name, params);
	for (const ix of def.indexes || [])
		store.createIndex(ix.name, ix.keyPath, { unique: !!ix.unique, multiEntry: !!ix.multiEntry });
	return store;
}

/* Creates the internal stores (and stores the sync asked for) in an upgrade
 * transaction. A legacy database gets all its existing records marked. */
function libraryUpgrade(db, tx, legacyWithData) {
	const existing = realStoreNames(db);
	for (const name of INTERNAL_STORES)
		if (!existing.includes(name)) db.createObjectStore(name, { autoIncrement: name === JOURNAL });
	for (const def of requestedStores.get(db.name) || [])
		if (!existing.includes(def.name)) createStore(db, def);
	if (!legacyWithData) return;
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	for (const storeName of existing) {
		if (isInternalStoreName(storeName) || isExcluded(db.name, storeName)) continue;
		const keysReq = native.getAllKeys.call(native.txObjectStore.call(tx, storeName));
		keysReq.onsuccess = () => {
			for (const k of keysReq.result) native.put.call(outbox, { id: newMutationId() }, [storeName, k]);
		};
	}
}

function versionError(message) {
	return typeof DOMException === 'function' ? new DOMException(message, 'VersionError') : new Error(message);
}

/* The intercepted indexedDB.open for a captured database. */
function openCaptured(factory, name, appVersion) {
	if (appVersion !== undefined) {
		appVersion = Number(appVersion);
		if (!Number.isInteger(appVersion) || appVersion < 1 || appVersion * VERSION_FACTOR > Number.MAX_SAFE_INTEGER)
			throw new TypeError('idbmount: version must be an integer from 1 to 2^53/' + VERSION_FACTOR);
	}
	name = String(name);
	const request = new CapturedOpenRequest();
	const fail = err => {
		request.settle({ readyState: 'done', error: err, transaction: null });
		request.fire('error');
	};
	/* The database may change between the look and the open (another
	 * connection's upgrade): a VersionError then means "look again". */
	const attempt = triesLeft => lookAtDatabase(factory, name).then(info => {
		const appCurrent = !info.exists ? 0 : info.hasOutbox ? appVersionOf(info.real) : info.real;
		const target = appVersion ?? Math.max(appCurrent, 1);
		if (target < appCurrent) {
			fail(versionError(`idbmount: the requested version (${target}) is less than the existing version (${appCurrent})`));
			return;
		}
		const missing = (requestedStores.get(name) || []).some(d => !info.storeNames.includes(d.name))
			|| (info.hasOutbox && INTERNAL_STORES.some(n => !info.storeNames.includes(n)));
		let real;
		if (target > appCurrent) real = target * VERSION_FACTOR;
		else if (!info.hasOutbox) real = target * VERSION_FACTOR + 1;
		else if (missing) real = info.real + 1;
		else real = info.real;
		const versions = { oldVersion: appCurrent, newVersion: target };
		const nreq = native.open.call(factory, name, real);
		nreq.onupgradeneeded = () => {
			const db = nreq.result;
			libraryUpgrade(db, nreq.transaction, info.exists && !info.hasOutbox);
			adoptConnection(db);
			if (target > appCurrent) {
				request.settle({ result: appView(db), transaction: nreq.transaction, readyState: 'done' });
				if (!request.fire('upgradeneeded', versions)) nreq.transaction.abort();
			}
		};
		nreq.onblocked = () => request.fire('blocked', versions);
		nreq.onsuccess = () => {
			const db = nreq.result;
			adoptConnection(db);
			knownCaptured.add(name);
			request.settle({ result: appView(db), transaction: null, readyState: 'done' });
			request.fire('success');
		};
		nreq.onerror = ev => {
			ev.preventDefault?.();
			if (nreq.error?.name === 'VersionError' && triesLeft > 0) attempt(triesLeft - 1);
			else fail(nreq.error);
		};
	}, fail);
	attempt(3);
	return request;
}

let captureInstalled = false;

/* The getter of attribute `name` on `proto`, or null where it is a plain
 * data property of each object (fake-indexeddb). */
function accessorOf(proto, name) {
	const desc = Object.getOwnPropertyDescriptor(proto, name);
	return desc && typeof desc.get === 'function' ? desc : null;
}

function patchGetter(proto, name, desc, get) {
	Object.defineProperty(proto, name, { ...desc, get });
}

/* Hides the internal stores and the library's share of the version from
 * the app on every path: a connection's and a transaction's
 * objectStoreNames, a connection's version, the versions of versionchange
 * events on a connection and of indexedDB.databases(); a transaction over
 * an internal store, objectStore() of one and deleteObjectStore() of one
 * fail as for a store that does not exist. The library reads through the
 * saved getters (realStoreNames, realVersion) and rawTransaction. */
function hideInternals(G, native) {
	const D = G.IDBDatabase.prototype;
	const T = G.IDBTransaction.prototype;
	const dbNames = accessorOf(D, 'objectStoreNames');
	const dbVersion = accessorOf(D, 'version');
	const txNames = accessorOf(T, 'objectStoreNames');
	if (dbNames && dbVersion && txNames) {
		native.dbStoreNames = dbNames.get;
		native.dbVersion = dbVersion.get;
		native.txStoreNames = txNames.get;
		patchGetter(D, 'objectStoreNames', dbNames, function objectStoreNames() {
			const names = dbNames.get.call(this);
			return capturedDatabases.has(this) ? visibleNames(names) : names;
		});
		patchGetter(D, 'version', dbVersion, function version() {
			const real = dbVersion.get.call(this);
			return capturedDatabases.has(this) ? appVersionOf(real) : real;
		});
		patchGetter(T, 'objectStoreNames', txNames, function objectStoreNames() {
			const names = txNames.get.call(this);
			return capturedDatabases.has(this.db) ? visibleNames(names) : names;
		});
		const V = G.IDBVersionChangeEvent?.prototype;
		const oldVersion = V && accessorOf(V, 'oldVersion');
		const newVersion = V && accessorOf(V, 'newVersion');
		if (oldVersion && newVersion) {
			/* versionchange on an app's connection: another connection wants
			 * a new real version (the app's own upgrade, or the library's). */
			patchGetter(V, 'oldVersion', oldVersion, function oldVersionOf() {
				const real = oldVersion.get.call(this);
				return capturedDatabases.has(this.target) ? appVersionOf(real) : real;
			});
			patchGetter(V, 'newVersion', newVersion, function newVersionOf() {
				const real = newVersion.get.call(this);
				return real !== null && capturedDatabases.has(this.target) ? appVersionOf(real) : real;
			});
		}
		const R = G.IDBOpenDBRequest?.prototype;
		if (R && EventTarget.prototype.isPrototypeOf(R)) Object.setPrototypeOf(CapturedOpenRequest.prototype, R);
	}
	T.objectStore = function objectStore(name) {
		if (isInternalStoreName(name) && !libraryTransactions.has(this) && capturedDatabases.has(this.db)) throw notFound(`objectStore("${name}")`);
		return native.txObjectStore.call(this, name);
	};
	D.deleteObjectStore = function deleteObjectStore(name) {
		if (isInternalStoreName(name) && capturedDatabases.has(this)) throw notFound(`deleteObjectStore("${name}")`);
		return native.deleteObjectStore.call(this, name);
	};
	const F = G.IDBFactory.prototype;
	if (typeof native.databases === 'function') {
		F.databases = async function databases() {
			const list = await native.databases.call(this);
			return Promise.all(list.map(async entry => {
				if (!captureFilter || !captureFilter(entry.name) || !(entry.version >= VERSION_FACTOR)) return entry;
				if (!knownCaptured.has(entry.name) && !(await lookAtDatabase(this, entry.name).catch(() => ({}))).hasOutbox) return entry;
				return { ...entry, version: appVersionOf(entry.version) };
			}));
		};
	}
}

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
	hideInternals(G, native);

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
		note(this, info => putEntry(info, value, key));
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
 * before (see the header comment for how). */
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

function ensureCaptureOf(name) {
	installPatches();
	capturedNames.add(name);
	if (!captureFilter) captureFilter = n => capturedNames.has(n);
}

/* ------------------------------------------------------------------------
 * Promise helpers
 * --------------------------------------------------------------------- */

function done(req) {
	return new Promise((resolve, reject) => {
		req.addEventListener('success', () => resolve(req.result));
		req.addEventListener('error', () => reject(req.error));
	});
}

/* Resolves when `tx` commits, rejects with its error when it aborts (a
 * request's error event comes first, while tx.error is still null, so
 * only the abort is listened to). */
function finished(tx) {
	return new Promise((resolve, reject) => {
		tx.addEventListener('complete', () => resolve());
		tx.addEventListener('abort', () => reject(tx.error || new DOMException('transaction aborted', 'AbortError')));
	});
}

function openRequest(req) {
	return new Promise((resolve, reject) => {
		req.addEventListener('success', () => resolve(req.result));
		req.addEventListener('error', () => reject(req.error));
	});
}

/* ------------------------------------------------------------------------
 * The library: openDatabase()
 * --------------------------------------------------------------------- */

/* A store inside a library transaction; every method returns a promise.
 * Keep to IndexedDB work between awaits, or the transaction commits. */
class StoreHandle {
	constructor(store) {
		this.raw = store;
	}
	get name() {
		return this.raw.name;
	}
	put(value, key) {
		return done(key === undefined ? this.raw.put(value) : this.raw.put(value, key));
	}
	add(value, key) {
		return done(key === undefined ? this.raw.add(value) : this.raw.add(value, key));
	}
	delete(query) {
		return done(this.raw.delete(query));
	}
	clear() {
		return done(this.raw.clear());
	}
	get(query) {
		return done(this.raw.get(query));
	}
	getAll(query, count) {
		return done(this.raw.getAll(query, count));
	}
	getAllKeys(query, count) {
		return done(this.raw.getAllKeys(query, count));
	}
	count(query) {
		return done(this.raw.count(query));
	}
	index(name) {
		const ix = this.raw.index(name);
		return {
			get: q => done(ix.get(q)),
			getAll: (q, n) => done(ix.getAll(q, n)),
			getAllKeys: (q, n) => done(ix.getAllKeys(q, n)),
			count: q => done(ix.count(q)),
			each: (opts, fn) => each(ix, opts, fn),
		};
	}
	/* each({query, direction}, fn): fn(cursor) for every record; fn may call
	 * cursor.update(v) / cursor.delete() (captured) and return false to
	 * stop. Resolves with the number of records visited. */
	each(opts, fn) {
		return each(this.raw, opts, fn);
	}
}

function each(source, opts, fn) {
	if (typeof opts === 'function') {
		fn = opts;
		opts = {};
	}
	return new Promise((resolve, reject) => {
		const req = source.openCursor(opts?.query, opts?.direction);
		let visited = 0;
		req.onsuccess = () => {
			const cursor = req.result;
			if (!cursor) return resolve(visited);
			visited += 1;
			let more;
			try {
				more = fn(cursor);
			} catch (err) {
				return reject(err);
			}
			if (more === false) resolve(visited);
			else cursor.continue();
		};
		req.onerror = () => reject(req.error);
	});
}

export class Database {
	constructor(name, db, schema) {
		this.name = name;
		this.raw = db;
		this.schema = schema;
		this.watchVersionChange();
	}

	/* Another connection (the sync, another tab) wants an upgrade: let go,
	 * and open again at the next call. */
	watchVersionChange() {
		this.raw.onversionchange = () => {
			this.raw.close();
			this.raw = null;
		};
	}

	async connection() {
		if (!this.raw) {
			this.raw = await openRequest(indexedDB.open(this.name));
			this.watchVersionChange();
		}
		return this.raw;
	}

	get version() {
		return this.raw ? this.raw.version : undefined;
	}

	get storeNames() {
		return this.raw ? Array.from(this.raw.objectStoreNames) : [];
	}

	/* transaction(stores, mode, async tx => ...): resolves with fn's result
	 * once the transaction committed; a throw aborts it. */
	async transaction(storeNames, mode, fn) {
		if (typeof mode === 'function') {
			fn = mode;
			mode = 'readonly';
		}
		const db = await this.connection();
		const names = typeof storeNames === 'string' ? [storeNames] : storeNames;
		const tx = db.transaction(names, mode);
		const end = finished(tx);
		const handle = { raw: tx, store: name => new StoreHandle(tx.objectStore(name)) };
		let result;
		try {
			result = await fn(handle);
		} catch (err) {
			try {
				tx.abort();
			} catch {
				/* already finished */
			}
			end.catch(() => {});
			throw err;
		}
		await end;
		return result;
	}

	write(store, fn) {
		return this.transaction([store], 'readwrite', tx => fn(tx.store(store)));
	}
	read(store, fn) {
		return this.transaction([store], 'readonly', tx => fn(tx.store(store)));
	}
	put(store, value, key) {
		return this.write(store, s => s.put(value, key));
	}
	add(store, value, key) {
		return this.write(store, s => s.add(value, key));
	}
	delete(store, query) {
		return this.write(store, s => s.delete(query));
	}
	clear(store) {
		return this.write(store, s => s.clear());
	}
	get(store, query) {
		return this.read(store, s => s.get(query));
	}
	getAll(store, query, count) {
		return this.read(store, s => s.getAll(query, count));
	}
	getAllKeys(store, query, count) {
		return this.read(store, s => s.getAllKeys(query, count));
	}
	count(store, query) {
		return this.read(store, s => s.count(query));
	}
	each(store, opts, fn, mode = 'readonly') {
		return this.transaction([store], mode, tx => tx.store(store).each(opts, fn));
	}

	/* startSync for this database; see startSync. */
	sync(options) {
		return startSync({ ...options, database: this.name });
	}

	close() {
		if (this.raw) this.raw.close();
		this.raw = null;
	}
}

/* openDatabase(name, {version, stores, upgrade}) -> Database.
 * `stores`: [{name, keyPath, autoIncrement, indexes: [{name, keyPath,
 * unique, multiEntry}]}] - the shape /v1/schema takes. Missing stores and
 * indexes are created when `version` rises; nothing is deleted.
 * `upgrade(db, tx, oldVersion, newVersion)` runs after that, for data
 * migrations. */
export async function openDatabase(name, { version = 1, stores = [], upgrade } = {}) {
	ensureCaptureOf(String(name));
	const req = indexedDB.open(name, version);
	req.onupgradeneeded = ev => {
		const db = req.result;
		const tx = req.transaction;
		for (const def of stores) {
			const store = db.objectStoreNames.contains(def.name) ? tx.objectStore(def.name) : createStore(db, { ...def, indexes: [] });
			for (const ix of def.indexes || [])
				if (!store.indexNames.contains(ix.name))
					store.createIndex(ix.name, ix.keyPath, { unique: !!ix.unique, multiEntry: !!ix.multiEntry });
		}
		if (upgrade) upgrade(db, tx, ev.oldVersion, ev.newVersion);
	};
	const db = await openRequest(req);
	return new Database(String(name), db, { version, stores });
}

/* ------------------------------------------------------------------------
 * Sync
 * --------------------------------------------------------------------- */

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

function classifyLocalError(err) {
	if (err instanceof SyncError) return err;
	if (err && err.name === 'QuotaExceededError')
		return new SyncError('quota', 'the browser refused to store more data (quota exceeded); nothing was lost, sync will retry');
	return new SyncError('local', String(err && err.message ? err.message : err));
}

function rangeOfStore(storeName) {
	return IDBKeyRange.bound([storeName], [storeName + '\u0000'], false, true);
}

function sleep(ms, signal) {
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

/* Splits an SSE byte stream into events: [{event, data, id}]. */
export class SSEParser {
	constructor(onEvent) {
		this.onEvent = onEvent;
		this.buffer = '';
		this.reset();
	}
	reset() {
		this.event = '';
		this.data = [];
		this.id = null;
	}
	push(text) {
		this.buffer += text;
		let nl;
		while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
			const line = this.buffer.slice(0, nl);
			const sep = this.buffer[nl] === '\r' && this.buffer[nl + 1] === '\n' ? 2 : 1;
			if (this.buffer[nl] === '\r' && nl + 1 === this.buffer.length) break; /* maybe \r\n split */
			this.buffer = this.buffer.slice(nl + sep);
			this.line(line);
		}
	}
	line(line) {
		if (line === '') {
			if (this.data.length || this.event) this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
			this.reset();
			return;
		}
		if (line.startsWith(':')) return;
		const colon = line.indexOf(':');
		const field = colon < 0 ? line : line.slice(0, colon);
		let value = colon < 0 ? '' : line.slice(colon + 1);
		if (value.startsWith(' ')) value = value.slice(1);
		if (field === 'event') this.event = value;
		else if (field === 'data') this.data.push(value);
		else if (field === 'id') this.id = value;
	}
}

const DEFAULT_URL = (() => {
	try {
		return new URL('.', import.meta.url).href.startsWith('http') ? new URL('/', import.meta.url).href : null;
	} catch {
		return null;
	}
})();

/* A journal entry that is not a [store, key] pair: a key set, {store, op},
 * noted where the keys a write touches are not known while it is made
 * (clear(), a key-range delete, a key the store's generator makes). */
function isKeySet(entry) {
	return !Array.isArray(entry);
}

/* The range of the revisions store's per-record entries ([store, key])
 * that a clear or range key set covers. */
function revisionRangeOf(set) {
	if (set.op === 'clear') return rangeOfStore(set.store);
	const lower = set.lower === undefined ? [set.store] : [set.store, set.lower];
	const upper = set.upper === undefined ? [set.store + '\u0000'] : [set.store, set.upper];
	return IDBKeyRange.bound(lower, upper, set.lower !== undefined && !!set.lowerOpen, set.upper === undefined || !!set.upperOpen);
}

function inKeySetRange(set, key) {
	if (set.op === 'clear') return true;
	if (set.lower !== undefined) {
		const c = indexedDB.cmp(key, set.lower);
		if (c < 0 || (c === 0 && set.lowerOpen)) return false;
	}
	if (set.upper !== undefined) {
		const c = indexedDB.cmp(key, set.upper);
		if (c > 0 || (c === 0 && set.upperOpen)) return false;
	}
	return true;
}

/* Largest key a key generator makes (2^53). */
const GENERATOR_MAX = 9007199254740992;

/* The keys key set `set` stands for, read inside `tx` (read-write over
 * REVS, META and, for "generated", the set's store):
 *   clear, range  every key (in the range) the server is known to hold a
 *                 live revision of: the revisions store's per-record
 *                 entries and runs. Keys written here and not pushed yet
 *                 are pending on their own. Resolved before any pulled
 *                 change is applied after the set was noted (see
 *                 applyChanges), so no record the server made later is
 *                 taken for one the app deleted.
 *   generated     the store's number keys above the highest one a
 *                 generated set of the store was resolved to before
 *                 (meta ["generated", store]) that have no known
 *                 revision: the keys its generator made (a key the server
 *                 sent has a revision; one the app wrote itself is also a
 *                 pair of its own).
 * `runs`: the revision runs, read once per transaction. */
async function keysOfSet(tx, set, runs) {
	const revs = native.txObjectStore.call(tx, REVS);
	if (set.op === 'generated') {
		const meta = native.txObjectStore.call(tx, META);
		const mark = ['generated', set.store];
		const after = await done(meta.get(mark));
		const range = IDBKeyRange.bound(after ?? -Infinity, GENERATOR_MAX, after !== undefined, false);
		const keys = await done(native.txObjectStore.call(tx, set.store).getAllKeys(range));
		if (!keys.length) return [];
		native.put.call(meta, keys[keys.length - 1], mark);
		const known = await revisionsOf(revs, set.store, keys, runs);
		return keys.filter(k => !known.has(JSON.stringify(encodeKey(k))));
	}
	const range = revisionRangeOf(set);
	const [keys, values] = await Promise.all([done(revs.getAllKeys(range)), done(revs.getAll(range))]);
	const newest = new Map(keys.map((k, i) => [JSON.stringify(encodeKey(k[1])), { key: k[1], rec: values[i] }]));
	for (const [id, { key, rec }] of revisionsInRuns(runs, set.store, null)) {
		if (!inKeySetRange(set, key)) continue;
		const had = newest.get(id);
		newest.set(id, { key, rec: had ? newerRevision(had.rec, rec) : rec });
	}
	return [...newest.values()].filter(e => e.rec && !e.rec.deleted).map(e => e.key);
}

/* Moves journal records into the outbox (one marker per key, with a new
 * mutation id) inside `tx` (read-write over JOURNAL, OUTBOX, REVS, META
 * and the app stores `stores`), key sets resolved (keysOfSet). A record
 * with a generated set of a store outside `stores` stays where it is when
 * `partial`, else that set is dropped (the store no longer exists).
 * `records`: [[journal key, entries]]. Resolves with the pairs moved. */
async function moveToOutbox(tx, records, stores, partial = false) {
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	const runs = records.some(([, entries]) => entries.some(isKeySet)) ? await done(native.txObjectStore.call(tx, REVS).getAll(runRange())) : [];
	const moved = [];
	for (const [journalKey, entries] of records) {
		const away = entries.some(e => isKeySet(e) && e.op === 'generated' && !stores.includes(e.store));
		if (away && partial) continue;
		for (const entry of entries) {
			if (!isKeySet(entry)) moved.push(entry);
			else if (entry.op !== 'generated' || stores.includes(entry.store))
				for (const key of await keysOfSet(tx, entry, runs)) moved.push([entry.store, key]);
		}
		native.delete.call(journal, journalKey);
	}
	for (const pair of moved) native.put.call(outbox, { id: newMutationId() }, pair);
	return moved;
}

/* Moves the whole journal into the outbox inside `tx` (see moveToOutbox).
 * This is where an edit storm collapses. Resolves with the number of
 * journal records moved. */
async function compactJournal(tx, stores) {
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const [keys, records] = await Promise.all([done(journal.getAllKeys()), done(journal.getAll())]);
	await moveToOutbox(tx, keys.map((k, i) => [k, records[i]]), stores);
	return keys.length;
}

/* A string that is equal for equal [store, key] pairs (Map keys). */
function pairId(storeName, key) {
	return storeName + '\u0000' + JSON.stringify(encodeKey(key));
}

/* What is pending in `tx` (holding JOURNAL and OUTBOX): Map pairId ->
 * {store, key, marker?, journal?: true}; a key set not resolved yet counts
 * as one entry {store, keySet, journal: true} of its own, and the records
 * holding one are listed in the map's `keySetRecords` ([[journal key,
 * entries]]). */
async function pendingWrites(tx) {
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	const [jKeys, records, mKeys, mVals] = await Promise.all([done(journal.getAllKeys()), done(journal.getAll()),
		done(outbox.getAllKeys()), done(outbox.getAll())]);
	const out = new Map();
	out.keySetRecords = [];
	mKeys.forEach((k, i) => out.set(pairId(k[0], k[1]), { store: k[0], key: k[1], marker: mVals[i] }));
	records.forEach((entries, i) => {
		let sets = false;
		entries.forEach((entry, j) => {
			if (isKeySet(entry)) {
				sets = true;
				out.set(`\u0001${jKeys[i]}.${j}`, { store: entry.store, keySet: entry, journal: true });
				return;
			}
			const [store, key] = entry;
			const id = pairId(store, key);
			const e = out.get(id) || { store, key };
			e.journal = true;
			out.set(id, e);
		});
		if (sets) out.keySetRecords.push([jKeys[i], entries]);
	});
	return out;
}

/* Reads the records of `keys` (all of one store) from `source`; with
 * `prefix` (the revisions store) the source's keys are [prefix, key].
 * Returns Map canonical-key JSON -> value, with only the keys that exist.
 * Keys that lie close together (a bulk insert) are read with one range
 * read instead of one get each: far fewer requests, which is what a batch
 * of 1,000 costs. The range read stops after twice as many records as
 * keys (sparse keys: the rest are read one by one), so it needs no count
 * first; getAllRecords, where the browser has it, brings keys and values
 * in one request. */
async function readMany(source, keys, prefix) {
	const wrap = prefix === undefined ? k => k : k => [prefix, k];
	const unwrap = prefix === undefined ? k => k : k => k[1];
	const out = new Map();
	let rest = keys;
	if (keys.length >= 16) {
		let lo = keys[0];
		let hi = keys[0];
		for (const k of keys) {
			if (indexedDB.cmp(k, lo) < 0) lo = k;
			if (indexedDB.cmp(k, hi) > 0) hi = k;
		}
		const range = IDBKeyRange.bound(wrap(lo), wrap(hi));
		const cap = 2 * keys.length;
		let ks;
		let vs;
		if (typeof source.getAllRecords === 'function') {
			const records = await done(source.getAllRecords({ query: range, count: cap }));
			ks = records.map(r => r.primaryKey);
			vs = records.map(r => r.value);
		} else {
			[ks, vs] = await Promise.all([done(source.getAllKeys(range, cap)), done(source.getAll(range, cap))]);
		}
		const wanted = new Set(keys.map(k => JSON.stringify(encodeKey(k))));
		ks.forEach((k, i) => {
			const id = JSON.stringify(encodeKey(unwrap(k)));
			if (wanted.has(id)) out.set(id, vs[i]);
		});
		if (ks.length < cap) return out;
		const last = ks[ks.length - 1];
		rest = keys.filter(k => indexedDB.cmp(wrap(k), last) > 0);
	}
	await Promise.all(rest.map(async k => {
		const v = await done(source.get(wrap(k)));
		if (v !== undefined || (await done(source.count(wrap(k)))) > 0) out.set(JSON.stringify(encodeKey(k)), v);
	}));
	return out;
}

/* Revision runs. An acknowledgement records the revisions the server gave
 * a batch as ONE record of the revisions store, keyed [0, n] (a number
 * first, so no [store, key] range ever holds it): {store, keys, revs,
 * seqs, deleted}, arrays in the same order. One put instead of one per
 * record: 1,000 small puts cost ~100 ms in Chromium, one put of the run
 * ~2 ms, and that was most of an acknowledgement. Runs are folded into
 * the per-record entries ([store, key] -> {rev, seq, deleted}) when the
 * sync is idle, or (the oldest) inside an acknowledgement once
 * RUN_FOLD_LIMIT of them pile up, so a lookup never reads more than that
 * many. A record's revision is the newest (highest rev: the server counts
 * each record's revisions up, deletes included) of its per-record entry
 * and its entries in runs; so the order in which runs and per-record
 * entries were written does not matter, and a fold that meets a newer
 * per-record entry keeps it. */
const RUN_FOLD_LIMIT = 16;
/* How long the sync must be quiet before it folds runs. */
const FOLD_IDLE_MS = 1000;

function runRange() {
	return IDBKeyRange.bound([0], [1], false, true);
}

function newerRevision(a, b) {
	if (!a) return b;
	if (!b) return a;
	return (b.rev ?? -1) > (a.rev ?? -1) ? b : a;
}

/* The entries of `runs` for `storeName`, newest per key: Map canonical-key
 * JSON -> {key, rec: {rev, seq, deleted}}; with `wanted` (a Set of
 * canonical-key JSON) only those keys. */
function revisionsInRuns(runs, storeName, wanted) {
	const out = new Map();
	for (const run of runs) {
		if (!run || run.store !== storeName) continue;
		run.keys.forEach((key, i) => {
			const id = JSON.stringify(encodeKey(key));
			if (wanted && !wanted.has(id)) return;
			const rec = { rev: run.revs[i], seq: run.seqs[i], deleted: !!run.deleted[i] };
			const had = out.get(id);
			if (!had || newerRevision(had.rec, rec) === rec) out.set(id, { key, rec });
		});
	}
	return out;
}

/* revisionsOf(revs, store, keys, runs?) -> Map canonical-key JSON ->
 * {rev, seq, deleted}: per-record entries and runs merged (see above).
 * `runs`: the runs (or a promise of them) when already read in this
 * transaction. */
async function revisionsOf(revs, storeName, keys, runs = null) {
	const [records, allRuns] = await Promise.all([readMany(revs, keys, storeName), runs ?? done(revs.getAll(runRange()))]);
	if (!allRuns.length) return records;
	const inRuns = revisionsInRuns(allRuns, storeName, new Set(keys.map(k => JSON.stringify(encodeKey(k)))));
	for (const [id, { rec }] of inRuns) records.set(id, newerRevision(records.get(id), rec));
	return records;
}

/* Folds the oldest `howMany` runs (all by default) into per-record
 * entries inside `tx` (read-write, holding the revisions store): a
 * per-record entry is written only where the run's revision is newer; a
 * newer revision in a run left unfolded still wins at lookup. Resolves
 * with the number of runs folded. */
async function foldRuns(tx, howMany = Infinity) {
	const revs = native.txObjectStore.call(tx, REVS);
	const [keys, all] = await Promise.all([done(revs.getAllKeys(runRange())), done(revs.getAll(runRange()))]);
	const runs = all.slice(0, howMany);
	if (!runs.length) return 0;
	const stores = new Set(runs.map(r => r && r.store));
	await Promise.all([...stores].map(async storeName => {
		const newest = revisionsInRuns(runs, storeName, null);
		const now = await readMany(revs, [...newest.values()].map(e => e.key), storeName);
		for (const [id, { key, rec }] of newest) if (newerRevision(now.get(id), rec) === rec) native.put.call(revs, rec, [storeName, key]);
	}));
	if (runs.length === all.length) native.delete.call(revs, runRange());
	else for (const k of keys.slice(0, runs.length)) native.delete.call(revs, k);
	return runs.length;
}

/* A request body: the JSON text as a Blob. Chromium sends a push of 1,000
 * records (~480 KB) given as a Blob in about a third of the time it takes
 * for the same text given as a string or bytes (measured 60 ms against
 * 160 ms, body to answer, on the benchmark's machine). */
function jsonBody(value) {
	const text = JSON.stringify(value);
	return typeof Blob === 'function' ? new Blob([text], { type: 'application/json' }) : text;
}

/* Durability of the sync's own read-write transactions (acknowledgements,
 * applied pulls, compaction): "relaxed" skips the flush to disk. Safe,
 * because losing one to a power cut only repeats work: a push is retried
 * with the same mutation ids (the server answers as the first time) and a
 * pull starts again from the older checkpoint. App transactions keep
 * their own durability. */
const RELAXED = { durability: 'relaxed' };

/* Journal records above this count are compacted before a push: an
 * offline edit storm collapses to one outbox marker per key. */
const STORM_RECORDS = 64;

/* startSync({database, url, token, ...}) -> Sync (already started).
 * Options: database (name), url (the daemon, default: where this module
 * was loaded from), token, batchSize (1000), pullLimit (1000),
 * conflict(c) (hook, see the header), serverStores ("upgrade" |
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
		if (!database) throw new TypeError('idbmount: startSync needs {database}');
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

	/* Compacts the journal into the outbox when it holds an edit storm
	 * (many records) or, while batches are shrunk, records larger than a
	 * batch; or always with `all`. Only the syncing tab calls it, so the batch it is pushing
	 * cannot be moved under it. */
	async compact(all = false, records = null) {
		const db = await this.connection();
		if (!db) return null;
		if (records === null) records = await done(native.txObjectStore.call(rawTransaction(db, [JOURNAL], 'readonly'), JOURNAL).count());
		if (!this.needsCompaction(records, all)) return db;
		this.checkLead();
		/* The revisions, the meta store and the app's stores too: key sets
		 * are resolved on the way (see keysOfSet). */
		const stores = this.storeNames(db);
		const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS, META, ...stores], 'readwrite', RELAXED);
		silentTransactions.add(tx);
		const end = finished(tx);
		end.catch(() => {});
		const journal = native.txObjectStore.call(tx, JOURNAL);
		const count = await done(journal.count());
		if (all || count > STORM_RECORDS) {
			await compactJournal(tx, stores);
		} else if (count && this.batchSize < this.maxBatchSize) {
			/* Only after a 413 or 4xx shrank the batch: records larger than
			 * it are split into markers, so one write can be singled out. */
			const [keys, records] = await Promise.all([done(journal.getAllKeys()), done(journal.getAll())]);
			await moveToOutbox(tx, keys.map((k, i) => [k, records[i]]).filter(([, entries]) => entries.length > this.batchSize), stores);
		}
		await end;
		return db;
	}

	/* Folds the revision runs into per-record entries (see
	 * revisionsOf) in one transaction of its own. Resolves with the
	 * number of runs folded. */
	async foldRevisions() {
		const db = await this.connection();
		if (!db) return 0;
		this.checkLead();
		const tx = rawTransaction(db, [REVS], 'readwrite', RELAXED);
		silentTransactions.add(tx);
		const end = finished(tx);
		end.catch(() => {});
		const folded = await foldRuns(tx);
		await end;
		this.runsWritten = false;
		return folded;
	}

	needsCompaction(records, all = false) {
		return records > 0 && (all || records > STORM_RECORDS || this.batchSize < this.maxBatchSize);
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
					this.channel = channelFor(this.database);
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
		const events = this.followEvents(signal);
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
						await this.foldRevisions();
						await this.waitForWake(30000);
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
			await this.pushAll();
			while (!this.upgradeWait && await this.pullPage()) { /* until the server says no more */ }
			if ((blocked = !!this.upgradeWait)) return this.answers > answersBefore;
			await this.applyParked();
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

	/* The server's data directory was made anew (another epoch). */
	async forgetServer(epoch) {
		const db = await this.connection();
		const tx = rawTransaction(db, [REVS, META], 'readwrite');
		silentTransactions.add(tx);
		native.clear.call(native.txObjectStore.call(tx, REVS));
		const meta = native.txObjectStore.call(tx, META);
		native.put.call(meta, 0, 'checkpoint');
		native.put.call(meta, epoch, 'epoch');
		native.delete.call(meta, 'delivered');
		await finished(tx);
		this.schemaSent = false;
		this.ownSeqs.clear(); /* seqs of the old data directory */
		this.setState({ checkpoint: 0, delivered: null, epoch });
		this.reportError(new SyncError('server', 'the server\'s data directory is new (epoch changed): pulling everything again'));
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
			if (missing.length) await this.createServerStores(missing, 'the server has these stores');
		}
	}

	/* Reads the next batch: outbox markers first (older writes), then whole
	 * journal records, up to batchSize keys; each key once, with the value
	 * its record holds now and the revision it is based on. A journal
	 * write's mutation id is "<install id>.<journal key>.<index>": stable
	 * across retries, unique across browsers. With `exclude` (see pushAll)
	 * the writes of batches still in flight are left out: journal records
	 * up to exclude.afterJournal and the outbox markers of exclude.markers
	 * (pairId -> marker id), and nothing is compacted. */
	async readBatch(compacted = false, exclude = null) {
		const db = await this.connection();
		const names = this.storeNames(db);
		const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS, ...names], 'readonly');
		const outbox = native.txObjectStore.call(tx, OUTBOX);
		const journal = native.txObjectStore.call(tx, JOURNAL);
		const revs = native.txObjectStore.call(tx, REVS);
		/* Counted in this transaction: a separate one would wait behind the
		 * app's writes (they all hold the journal) once more per batch. */
		const counting = done(journal.count());
		const picked = new Map();
		const journalKeys = [];
		const outboxIds = new Map();
		/* The markers are read while the journal is counted (one round trip
		 * less per batch); when it must be compacted first they are read
		 * again after. */
		const markers = new Promise((resolve, reject) => {
			const req = outbox.openCursor();
			req.onsuccess = () => {
				const c = req.result;
				if (!c) return resolve();
				const id = pairId(c.key[0], c.key[1]);
				outboxIds.set(id, c.value.id);
				const inFlight = exclude !== null && exclude.markers.get(id) === c.value.id;
				if (!c.value.rejected && !inFlight && picked.size < this.batchSize)
					picked.set(id, { store: c.key[0], key: c.key[1], id: c.value.id, from: 'outbox' });
				c.continue();
			};
			req.onerror = () => reject(req.error);
		});
		markers.catch(() => {});
		const records = await counting;
		if (!compacted && !exclude && this.needsCompaction(records)) {
			await this.compact(false, records);
			return this.readBatch(true);
		}
		await markers;
		let keySets = false;
		if (picked.size < this.batchSize) {
			await new Promise((resolve, reject) => {
				const after = exclude?.afterJournal ?? null;
				const req = journal.openCursor(after === null ? null : IDBKeyRange.lowerBound(after, true));
				req.onsuccess = () => {
					const c = req.result;
					if (!c) return resolve();
					/* A record with key sets is resolved into the outbox
					 * first (compaction), never read ahead. */
					if (c.value.some(isKeySet)) {
						keySets = true;
						return resolve();
					}
					if (journalKeys.length && picked.size + c.value.length > this.batchSize) return resolve();
					journalKeys.push(c.key);
					c.value.forEach(([store, key], i) => {
						const id = pairId(store, key);
						picked.delete(id); /* the newer write wins; its ack settles both */
						picked.set(id, { store, key, id: `${this.installId}.${c.key}.${i}`, from: 'journal' });
					});
					c.continue();
				};
				req.onerror = () => reject(req.error);
			});
		}
		if (keySets && !exclude) {
			await this.compact(true);
			return this.readBatch(true);
		}
		const batch = [...picked.entries()].map(([pid, m]) => ({ ...m, pid, marker: outboxIds.get(pid) }));
		batch.stoppedAtKeySets = keySets;
		const byStore = new Map();
		for (const m of batch) {
			if (!byStore.has(m.store)) byStore.set(m.store, []);
			byStore.get(m.store).push(m);
		}
		const runs = batch.length ? done(revs.getAll(runRange())) : null;
		await Promise.all([...byStore].map(async ([storeName, group]) => {
			const keys = group.map(m => m.key);
			const [values, bases] = await Promise.all([
				names.includes(storeName) ? readMany(tx.objectStore(storeName), keys) : new Map(),
				revisionsOf(revs, storeName, keys, runs),
			]);
			for (const m of group) {
				const id = JSON.stringify(encodeKey(m.key));
				m.exists = values.has(id);
				m.value = values.get(id);
				const r = bases.get(id);
				m.base = r ? r.rev : null;
			}
		}));
		batch.journalKeys = journalKeys;
		return batch;
	}
	/* Encodes a batch: {mutations, unencodable: [results], byId: Map id ->
	 * mutation}. Values without Blobs are encoded without an await each. */
	async encodeBatch(batch) {
		const mutations = [];
		const unencodable = [];
		const byId = new Map();
		for (const m of batch) {
			try {
				const blobs = [];
				const mutation = {
					id: m.id,
					db: this.database,
					store: m.store,
					key: encodeKey(m.key),
					op: m.exists ? 'put' : 'delete',
					...(m.exists ? { value: encodeValueSync(m.value, blobs, 0) } : {}),
					base: m.base,
				};
				for (const { blob, holder } of blobs) holder['~b'] = bytesToBase64url(new Uint8Array(await blob.arrayBuffer()));
				mutations.push(mutation);
				byId.set(m.id, mutation);
			} catch (err) {
				unencodable.push({ id: m.id, status: 'unencodable', error: String(err.message || err) });
			}
		}
		return { mutations, unencodable, byId };
	}

	/* Pushes everything pushable, as a pipeline: while the server works on
	 * batch k, batch k+1 is read (leaving out what is in flight) and
	 * encoded, and once k is answered k+1 is sent at once while k's
	 * acknowledgement is written. What it does not change: batch k+1 is
	 * SENT only after k was answered (so the server sees each record's
	 * writes in order); an entry is dropped only by the acknowledgement of
	 * the answer that covers it; ids stay what they are, so a retried push
	 * is answered as the first time; the acknowledgements commit in batch
	 * order. A record in k+1 that was also in k is read before k's revision
	 * is recorded, so its base is set to the revision k's answer gave. Any
	 * error stops the pipeline after the acknowledgements of the batches
	 * answered before it. */
	async pushAll() {
		const inFlight = new Set(); /* read for a push, not yet acknowledged */
		const answeredRevs = new Map(); /* pairId -> revision from an answer */
		let acking = Promise.resolve();
		let ackFailed = false;
		let afterJournal = null;
		const exclusion = () => {
			const markers = new Map();
			for (const b of inFlight) for (const m of b) if (m.marker !== undefined) markers.set(m.pid, m.marker);
			return { afterJournal, markers };
		};
		/* Reads and encodes the next batch; with `ahead`, leaving out what
		 * is in flight. */
		const prepare = async ahead => {
			const batch = await this.readBatch(false, ahead ? exclusion() : null);
			if (batch.journalKeys.length) afterJournal = batch.journalKeys[batch.journalKeys.length - 1];
			inFlight.add(batch);
			return { batch, ...(await this.encodeBatch(batch)) };
		};
		const rebase = p => {
			for (const m of p.batch) {
				if (!answeredRevs.has(m.pid)) continue;
				m.base = answeredRevs.get(m.pid);
				const mutation = p.byId.get(m.id);
				if (mutation) mutation.base = m.base;
			}
		};
		/* A read ahead stops at key sets: once everything in flight is
		 * acknowledged, they are resolved (a read that is not ahead) and
		 * pushed in the same round. */
		const pastKeySets = async p => {
			if (p.batch.length || !p.batch.stoppedAtKeySets) return p;
			await acking;
			inFlight.clear();
			afterJournal = null;
			return prepare(false);
		};
		const queueAck = (b, results) => {
			acking = acking.then(() => this.acknowledge(b, results)).then(() => inFlight.delete(b), err => {
				ackFailed = true;
				throw err;
			});
			acking.catch(() => {});
		};
		try {
			let p = await prepare(false);
			while (p.batch.length && !ackFailed) {
				const { batch, mutations, unencodable } = p;
				if (!mutations.length) {
					queueAck(batch, unencodable);
					await acking;
					p = await pastKeySets(await prepare(true));
					continue;
				}
				const answer = this.request('POST', 'v1/push', { mutations });
				answer.catch(() => {});
				const next = prepare(true);
				next.catch(() => {});
				let results;
				try {
					const body = await answer;
					results = Array.isArray(body?.results) ? body.results : Array.isArray(body) ? body : null;
					if (!results) throw new SyncError('server', 'push answer without results');
				} catch (err) {
					/* A body over the server's limit: halve the batch until one
					 * mutation alone is too large, which is then rejected. Other
					 * client errors for a batch: push one by one to find the
					 * culprit, and reject only it. The batch read ahead is
					 * dropped (it only read); reading starts afresh. */
					await next.catch(() => {});
					await acking;
					inFlight.clear();
					if (!(err instanceof SyncError && (err.kind === 'too-large' || err.kind === 'client'))) throw err;
					if (mutations.length > 1) {
						this.batchSize = Math.max(1, Math.floor(mutations.length / 2));
					} else {
						await this.acknowledge(batch, [{ id: mutations[0].id, status: 'rejected', error: err.message }]);
						this.reportError(err);
					}
					afterJournal = null;
					p = await prepare(false);
					continue;
				}
				const byId = new Map(batch.map(m => [m.id, m]));
				for (const r of results) {
					const m = byId.get(r?.id);
					if (m && r.status === 'ok') answeredRevs.set(m.pid, r.rev);
					else if (m && r.status === 'conflict') answeredRevs.set(m.pid, r.current?.rev ?? null);
				}
				queueAck(batch, [...results, ...unencodable]);
				this.batchSize = Math.min(this.maxBatchSize, this.batchSize * 2);
				p = await next;
				rebase(p);
				p = await pastKeySets(p);
			}
		} finally {
			await acking;
		}
	}

	/* Settles a pushed batch in one transaction: revisions recorded, the
	 * journal records it covered deleted, outbox markers deleted when they
	 * still hold the id that was read, rejected writes kept as rejected
	 * markers, conflicts resolved. A write made after the batch was read is
	 * in a newer journal record and goes in the next batch; an answer the
	 * server did not give leaves its write pending. */
	async acknowledge(batch, results) {
		const byId = new Map(batch.map(m => [m.id, m]));
		const acks = [];
		const conflicts = [];
		const answered = new Set();
		for (const r of results) {
			const m = byId.get(r?.id);
			if (!m) continue;
			answered.add(m);
			if (r.status === 'ok') acks.push({ m, rev: r.rev, seq: r.seq });
			else if (r.status === 'conflict') conflicts.push({ m, current: r.current || {} });
			else acks.push({ m, rejected: r.error || r.detail || r.status || 'rejected by the server' });
		}
		/* The hook runs outside any transaction: it may await. */
		for (const c of conflicts) c.resolution = await this.resolveConflict(c);

		const db = await this.connection();
		const names = this.storeNames(db);
		this.checkLead();
		const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS, ...names], 'readwrite', RELAXED);
		silentTransactions.add(tx);
		const end = finished(tx);
		end.catch(() => {});
		const outbox = native.txObjectStore.call(tx, OUTBOX);
		const journal = native.txObjectStore.call(tx, JOURNAL);
		const revs = native.txObjectStore.call(tx, REVS);
		const last = batch.journalKeys.length ? batch.journalKeys[batch.journalKeys.length - 1] : null;
		/* Keys written again since the batch was read matter only for the
		 * rare outcomes (rejected, conflict, unanswered): read the newer
		 * journal records only then, since while an app writes fast they
		 * can be many. Markers are read as they are now. */
		const rare = acks.some(a => a.rejected) || conflicts.length > 0 || answered.size < batch.length;
		const [newer, markersNow, runKeys] = await Promise.all([
			!rare ? [] : last === null ? done(journal.getAll()) : done(journal.getAll(IDBKeyRange.lowerBound(last, true))),
			Promise.all(batch.map(m => (m.marker !== undefined ? done(outbox.get([m.store, m.key])) : undefined))),
			done(revs.getAllKeys(runRange())),
		]);
		/* Too many runs would make every lookup read them all: the oldest
		 * are folded here, in this transaction, one for the one added, so
		 * a long stream of batches costs per batch what it did before runs
		 * (a put per record), and a burst up to the limit costs nothing
		 * of it until the sync is idle. */
		let nextRun = runKeys.length ? runKeys[runKeys.length - 1][1] + 1 : 1;
		if (runKeys.length >= RUN_FOLD_LIMIT) await foldRuns(tx, runKeys.length - RUN_FOLD_LIMIT + 1);
		/* A newer clear() or range delete may cover any key of its store. */
		const pids = new Set();
		const sweptStores = new Set();
		for (const entries of newer)
			for (const e of entries) {
				if (!isKeySet(e)) pids.add(pairId(e[0], e[1]));
				else if (e.op !== 'generated') sweptStores.add(e.store);
			}
		const rewritten = { has: pid => pids.has(pid) || sweptStores.has(pid.slice(0, pid.indexOf('\u0000'))) };
		const markerNow = new Map(batch.map((m, i) => [m, markersNow[i]]));
		/* Settles m's pending write: the journal record goes as a whole
		 * below; an outbox marker only while it is the one that was read. */
		const settle = m => {
			const now = markerNow.get(m);
			if (now && now.id === m.marker) native.delete.call(outbox, [m.store, m.key]);
		};
		const synced = [];
		const seqs = [];
		const runs = new Map(); /* store -> run record of the revisions given */
		for (const a of acks) {
			const k = [a.m.store, a.m.key];
			if (a.rejected) {
				settle(a.m);
				if (!rewritten.has(a.m.pid)) native.put.call(outbox, { id: a.m.id, rejected: String(a.rejected) }, k);
				continue;
			}
			let run = runs.get(a.m.store);
			if (!run) runs.set(a.m.store, (run = { store: a.m.store, keys: [], revs: [], seqs: [], deleted: [] }));
			run.keys.push(a.m.key);
			run.revs.push(a.rev);
			run.seqs.push(a.seq);
			run.deleted.push(!a.m.exists);
			if (typeof a.seq === 'number') seqs.push(a.seq);
			settle(a.m);
			if (!rewritten.has(a.m.pid)) synced.push(a.m);
		}
		for (const run of runs.values()) native.put.call(revs, run, [0, nextRun++]);
		if (runs.size) this.runsWritten = true;
		/* Unanswered writes stay pending: as outbox markers, since their
		 * journal records go. */
		for (const m of batch)
			if (!answered.has(m) && m.from === 'journal' && !rewritten.has(m.pid)) native.put.call(outbox, { id: newMutationId() }, [m.store, m.key]);
		for (const key of batch.journalKeys) native.delete.call(journal, key);
		const resolved = [];
		for (const c of conflicts) {
			const k = [c.m.store, c.m.key];
			const cur = c.current;
			native.put.call(revs, { rev: cur.rev ?? null, seq: cur.seq ?? null, deleted: !!cur.deleted }, k);
			settle(c.m);
			if (rewritten.has(c.m.pid)) continue; /* written again meanwhile: that write goes next, on top of cur.rev */
			const store = names.includes(c.m.store) ? tx.objectStore(c.m.store) : null;
			try {
				if (c.resolution.use === 'remote') {
					if (store) {
						if (cur.deleted) native.delete.call(store, c.m.key);
						else if (store.keyPath === null) native.put.call(store, decodeValue(cur.value), c.m.key);
						else native.put.call(store, decodeValue(cur.value));
					}
				} else {
					if (store && c.resolution.use === 'value') {
						if (c.resolution.value === undefined) native.delete.call(store, c.m.key);
						else if (store.keyPath === null) native.put.call(store, c.resolution.value, c.m.key);
						else native.put.call(store, c.resolution.value);
					}
					native.put.call(outbox, { id: newMutationId() }, k);
				}
			} catch (err) {
				native.put.call(outbox, { id: c.m.id, rejected: 'conflict resolution failed: ' + err.message }, k);
			}
			resolved.push(c);
		}
		try {
			await end;
		} catch (err) {
			throw classifyLocalError(err);
		}
		/* Only once recorded: a pull skips these as this tab's echoes. */
		for (const seq of seqs) this.ownSeqs.add(seq);
		if (synced.length) {
			const byStore = new Map();
			for (const m of synced) {
				if (!byStore.has(m.store)) byStore.set(m.store, []);
				byStore.get(m.store).push(m.key);
			}
			for (const [store, keys] of byStore) this.broadcast('state', { store, keys, state: 'synced' });
		}
		for (const c of resolved) {
			const detail = {
				store: c.m.store,
				key: c.m.key,
				local: { deleted: !c.m.exists, value: c.m.value },
				remote: { rev: c.current.rev, deleted: !!c.current.deleted, value: c.current.deleted ? undefined : decodeValue(c.current.value) },
				resolution: c.resolution.use,
			};
			this.broadcast('conflict', detail);
			if (c.resolution.use === 'remote')
				this.broadcast('change', [{ store: c.m.store, key: c.m.key, op: c.current.deleted ? 'delete' : 'put' }]);
		}
	}

	async resolveConflict(c) {
		if (!this.conflictHook) return { use: 'remote' };
		const answer = await this.conflictHook({
			store: c.m.store,
			key: c.m.key,
			local: { deleted: !c.m.exists, value: c.m.value },
			remote: { rev: c.current.rev, deleted: !!c.current.deleted, value: c.current.deleted ? undefined : decodeValue(c.current.value) },
		});
		if (answer === 'local') return { use: 'local' };
		if (answer && typeof answer === 'object' && 'value' in answer) return { use: 'value', value: answer.value };
		return { use: 'remote' };
	}

	/* Pulls one page; returns true when the server has more. */
	async pullPage() {
		/* Seqs are global and unique: when the changes right after the
		 * checkpoint are this tab's own acknowledged pushes, no other change
		 * lies between them, and pulling them back would only skip them as
		 * echoes (10,000 pushed records would come back as 10 pages). The
		 * checkpoint moves past them here and is saved with the next page. */
		let since = this.state.checkpoint ?? 0;
		while (this.ownSeqs.has(since + 1)) this.ownSeqs.delete(++since);
		if (since !== this.state.checkpoint) this.state.checkpoint = since;
		const answer = await this.request('GET', `v1/pull?since=${encodeURIComponent(since)}&limit=${this.pullLimit}`);
		if (!answer || !Array.isArray(answer.changes)) throw new SyncError('server', 'pull answer without changes');
		if (typeof answer.epoch === 'string' && answer.epoch !== this.state.epoch) {
			if (this.state.epoch) {
				/* Another data directory: its checkpoints and revisions mean
				 * nothing here. Start over from a snapshot; local writes
				 * still pending are pushed as new. */
				await this.forgetServer(answer.epoch);
				return true;
			}
			await this.saveMeta({ epoch: answer.epoch });
			this.state.epoch = answer.epoch;
		}
		const mine = answer.changes.filter(c => c && c.db === this.database);
		const delivered = typeof answer.delivered === 'number' ? answer.delivered : this.state.delivered;
		await this.applyChanges(mine, answer.checkpoint ?? since, delivered);
		return !!answer.more && answer.checkpoint !== since;
	}

	/* Applies server changes without capturing them (no echo), skipping keys
	 * with a pending local write (the push settles those) and changes the
	 * local copy already has; saves the checkpoint in the same transaction.
	 * Changes for stores this database lacks are parked until the store
	 * exists. */
	async applyChanges(changes, checkpoint, delivered) {
		const db = await this.connection();
		/* Stores excluded from sync take nothing from the server. */
		changes = changes.filter(c => !isInternalStoreName(c.store) && !isExcluded(this.database, c.store));
		/* Changes for stores this database lacks are parked first (with the
		 * checkpoint), then the stores are created; applyParked puts them in. */
		const existing = realStoreNames(db);
		const unknown = [...new Set(changes.map(c => c.store).filter(s => !existing.includes(s)))];
		const names = [...new Set(changes.map(c => c.store))].filter(s => existing.includes(s));
		this.checkLead();
		/* A page with no changes (the pull after a push, whose own changes
		 * the checkpoint skipped) saves only the checkpoint: a transaction
		 * of the meta store, which the app's writes (they all hold the
		 * journal) neither wait for nor hold up. */
		const scope = changes.length ? [JOURNAL, OUTBOX, REVS, META, ...names] : [META];
		const tx = rawTransaction(db, scope, 'readwrite', RELAXED);
		silentTransactions.add(tx);
		const end = finished(tx);
		end.catch(() => {});
		const revs = changes.length ? native.txObjectStore.call(tx, REVS) : null;
		const meta = native.txObjectStore.call(tx, META);
		const pendingNow = changes.length ? pendingWrites(tx) : new Map(); /* local writes wait: the push decides */
		const applied = [];
		const decoded = [];
		let quota = null;
		for (const c of changes) {
			try {
				decoded.push({ c, key: decodeKey(c.key), value: c.op === 'put' ? decodeValue(c.value) : undefined });
			} catch (err) {
				this.reportError(new SyncError('client', `server change ${c.store}/${JSON.stringify(c.key)} cannot be decoded: ${err.message}`));
			}
		}
		const pending = await pendingNow;
		/* Key sets noted before this page are resolved first, against the
		 * revisions as they are before it (see keysOfSet): a record this
		 * page brings is not taken for one the app cleared, and a key the
		 * app's generator made waits for the push like any pending write. */
		if (pending.keySetRecords?.length)
			for (const [store, key] of await moveToOutbox(tx, pending.keySetRecords, names, true))
				if (!pending.has(pairId(store, key))) pending.set(pairId(store, key), { store, key, journal: true });
		/* Echoes of this tab's own pushes need no look at the revisions. */
		const looked = decoded.filter(d => !this.ownSeqs.has(d.c.seq));
		const [looks, runs] = await Promise.all([
			Promise.all(looked.map(d => done(revs.get([d.c.store, d.key])))),
			looked.length ? done(revs.getAll(runRange())) : [],
		]);
		const known = new Map(looked.map((d, i) => [pairId(d.c.store, d.key), looks[i]]));
		if (runs.length)
			for (const storeName of new Set(looked.map(d => d.c.store))) {
				const wanted = new Set(looked.filter(d => d.c.store === storeName).map(d => JSON.stringify(encodeKey(d.key))));
				for (const [, { key, rec }] of revisionsInRuns(runs, storeName, wanted)) {
					const id = pairId(storeName, key);
					known.set(id, newerRevision(known.get(id), rec));
				}
			}
		decoded.forEach(d => {
			const rev = this.ownSeqs.has(d.c.seq) ? 'own' : known.get(pairId(d.c.store, d.key));
			if (rev === 'own') return;
			const marker = pending.get(pairId(d.c.store, d.key));
			const k = [d.c.store, d.key];
			if (!names.includes(d.c.store)) {
				native.put.call(meta, d.c, ['parked', d.c.store, d.key]);
				return;
			}
			if (marker) return; /* a local write waits: the push decides */
			if (rev && typeof rev.rev === 'number' && typeof d.c.rev === 'number' && rev.rev >= d.c.rev) return;
			const store = tx.objectStore(d.c.store);
			try {
				if (d.c.op === 'delete') native.delete.call(store, d.key);
				else if (store.keyPath === null) native.put.call(store, d.value, d.key);
				else native.put.call(store, d.value);
			} catch (err) {
				if (err && err.name === 'QuotaExceededError') {
					quota = err;
					return;
				}
				/* e.g. a value without the store's inline key: it can never be
				 * stored here; report it and go on */
				this.reportError(new SyncError('client', `server change ${d.c.store}/${JSON.stringify(d.c.key)} does not fit this store: ${err.message}`));
				return;
			}
			native.put.call(revs, { rev: d.c.rev, seq: d.c.seq, deleted: d.c.op === 'delete' }, k);
			applied.push({ store: d.c.store, key: d.key, op: d.c.op, rev: d.c.rev, seq: d.c.seq });
		});
		if (quota) {
			/* Nothing of this page is kept, the checkpoint stays: the same
			 * changes are pulled again once there is room. */
			tx.abort();
			await end.catch(() => {});
			throw classifyLocalError(quota);
		}
		native.put.call(meta, checkpoint, 'checkpoint');
		if (delivered !== null && delivered !== undefined) native.put.call(meta, delivered, 'delivered');
		try {
			await end;
		} catch (err) {
			throw classifyLocalError(err);
		}
		for (const seq of this.ownSeqs) if (seq <= checkpoint) this.ownSeqs.delete(seq);
		if (unknown.length)
			await this.createServerStores(unknown.map(name => ({ name, keyPath: null, autoIncrement: false })), 'records arrived for a store this browser does not have');
		const deliveredChanged = delivered !== this.state.delivered;
		this.setState({ checkpoint, delivered });
		if (applied.length) this.broadcast('change', applied);
		if (deliveredChanged) this.broadcast('state', { delivered });
	}

	/* Creates stores that exist on the server in a version upgrade, or
	 * reports them as not applied (serverStores "report", or the upgrade is
	 * blocked by a connection that does not close). */
	async createServerStores(defs, why) {
		const list = requestedStores.get(this.database) || [];
		for (const d of defs) if (!list.some(x => x.name === d.name)) list.push({ name: d.name, keyPath: d.keyPath ?? null, autoIncrement: !!d.autoIncrement, indexes: d.indexes || [] });
		requestedStores.set(this.database, list);
		const names = defs.map(d => d.name);
		if (this.serverStores !== 'upgrade') {
			this.noteNotApplied(names, 'serverStores is "report": the app decides when to upgrade');
			return;
		}
		if (this.db) {
			this.db.close();
			this.db = null;
		}
		const req = indexedDB.open(this.database);
		let blockedTimer = null;
		const result = await new Promise(resolve => {
			req.addEventListener('blocked', () => {
				blockedTimer = setTimeout(() => resolve('blocked'), 5000);
			});
			req.addEventListener('success', () => resolve('ok'));
			req.addEventListener('error', () => resolve('error'));
		});
		clearTimeout(blockedTimer);
		if (result === 'ok') {
			req.result.close();
			const notApplied = this.state.notApplied.filter(n => !names.includes(n.store));
			this.setState({ notApplied });
			this.emit('schema', { applied: names, reason: why });
			return;
		}
		/* The open stays queued when blocked; when it finally runs the
		 * stores appear and parked changes are applied at the next cycle. */
		if (result === 'blocked') {
			this.upgradeWait = new Promise(resolve => {
				req.addEventListener('success', () => {
					req.result.close();
					this.upgradeWait = null;
					this.setState({ notApplied: this.state.notApplied.filter(n => !names.includes(n.store)) });
					this.emit('schema', { applied: names, reason: why });
					this.wake();
					resolve();
				});
				req.addEventListener('error', () => {
					this.upgradeWait = null;
					resolve();
				});
			});
		}
		this.noteNotApplied(names, result === 'blocked'
			? 'the version upgrade is blocked: another connection to this database does not close on versionchange'
			: 'the version upgrade failed: ' + (req.error?.message || 'unknown error'));
	}

	noteNotApplied(names, reason) {
		const notApplied = [...this.state.notApplied.filter(n => !names.includes(n.store)), ...names.map(store => ({ store, reason }))];
		this.setState({ notApplied });
		this.emit('schema', { notApplied: names, reason });
	}

	/* Changes parked for stores that now exist are applied. */
	async applyParked() {
		const db = await this.connection();
		const tx = rawTransaction(db, [META], 'readonly');
		const meta = native.txObjectStore.call(tx, META);
		const range = IDBKeyRange.bound(['parked'], ['parked\u0000'], false, true);
		const parked = await done(meta.getAll(range));
		const existing = realStoreNames(db);
		const ready = parked.filter(c => existing.includes(c.store));
		if (!ready.length) return;
		await this.applyChanges(ready, this.state.checkpoint, this.state.delivered);
		const tx2 = rawTransaction(db, [META], 'readwrite');
		silentTransactions.add(tx2);
		for (const c of ready) native.delete.call(native.txObjectStore.call(tx2, META), ['parked', c.store, decodeKey(c.key)]);
		await finished(tx2);
	}

	/* Follows /v1/events while this tab leads; each event wakes the loop.
	 * A stream that cannot connect (no answer, or 5xx) counts as a failed
	 * attempt (noteFailure); while the sync is failing the stream waits
	 * for a round that gets through, which is the one probe per backoff
	 * step. */
	async followEvents(signal) {
		const decoder = new TextDecoder();
		while (!signal.aborted) {
			if (this.retry) {
				await this.untilReachable(signal);
				continue;
			}
			let unreachable = false;
			try {
				if (this.authBlocked) {
					await sleep(1000, signal);
					continue;
				}
				let res;
				try {
					res = await this.fetchImpl(this.url + 'v1/events?since=' + encodeURIComponent(this.state.checkpoint ?? 0), {
						headers: { Authorization: 'Bearer ' + this.token, Accept: 'text/event-stream' },
						signal,
					});
				} catch (err) {
					unreachable = true;
					throw err;
				}
				if (!res.ok || !res.body) {
					unreachable = res.status >= 500 || res.status === 429;
					throw new SyncError(res.status === 401 ? 'auth' : 'server', 'events answered ' + res.status, { status: res.status });
				}
				this.eventBackoff.reset();
				const parser = new SSEParser(ev => {
					if (ev.event === 'change' || ev.event === 'message') {
						try {
							const data = JSON.parse(ev.data);
							if (typeof data?.delivered === 'number' && data.delivered !== this.state.delivered) {
								this.setState({ delivered: data.delivered });
								this.broadcast('state', { delivered: data.delivered });
							}
						} catch {
							/* an event without JSON data still means "pull" */
						}
					}
					if (ev.event !== 'ping') this.wake();
				});
				const reader = res.body.getReader();
				/* Catch up on what happened while disconnected; a stream that
				 * got through while the rounds failed ends their wait. */
				this.wake(this.retry ? 'retry' : 'work');
				for (;;) {
					const { value, done: end } = await reader.read();
					if (end) break;
					parser.push(decoder.decode(value, { stream: true }));
				}
			} catch (err) {
				if (signal.aborted) break;
				void err;
			}
			if (signal.aborted) break;
			if (unreachable) {
				await this.noteFailure();
				this.wake(); /* an idle loop starts waiting out the step, then probes */
				continue;
			}
			await sleep(this.eventBackoff.next(), signal);
		}
	}
}

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

/* For tests and tools: the internal store names, and a transaction over
 * any stores of a connection, internal ones included. */
export const internals = {
	JOURNAL, OUTBOX, REVS, META, INTERNAL_STORES, silentTransactions,
	transaction: (db, storeNames, mode) => rawTransaction(rawOf(db), storeNames, mode),
};
