/* versions.js - how the outbox gets into the app's database, and how the
 * app is kept from seeing it.
 *
 * Decision: the outbox must live in the same database, or a write and its
 * marker could not commit together. The real IndexedDB version of a
 * captured database is therefore
 *     real = appVersion * VERSION_FACTOR + generation     (VERSION_FACTOR 1024)
 * and indexedDB.open(name, appVersion) is intercepted (openCaptured): it
 * looks at the database first (indexedDB.databases(), then a plain open),
 * opens it at the real version it needs, creates the internal stores in the
 * upgrade transaction and forwards upgradeneeded to the app only when the
 * APP's version changed, with the app's oldVersion/newVersion. When the
 * library needs an upgrade of its own (adding the outbox to a database that
 * existed before capture, or creating a store that was made on the server)
 * it bumps `generation` and the app sees no upgradeneeded. A database that
 * has no outbox store yet is "legacy": its real version is the app's
 * version. When the outbox is added to a legacy database, every record
 * already in it is marked dirty in that same upgrade, so existing data
 * syncs too.
 * The app sees none of this (hideInternals): the IDBDatabase and
 * IDBTransaction getters of objectStoreNames and version, the versions of
 * versionchange events and of indexedDB.databases() are patched to show the
 * app's stores and versions on every path (transaction.db, request.source,
 * event targets, cursors), and a transaction, objectStore() or
 * deleteObjectStore() of an internal store fails as for a store that does
 * not exist. Where those attributes are data properties of each object
 * instead of prototype getters (fake-indexeddb in Node), the connection
 * open() returns is a Proxy doing the same for the connection only.
 */
import {
	INTERNAL_STORES, JOURNAL, OUTBOX, VERSION_FACTOR, native, capturedDatabases, libraryTransactions, isInternalStoreName,
	isExcluded, appVersionOf, realVersion, realStoreNames, notFound,
} from './raw.js';
import { adoptConnection } from './journal.js';
import { newMutationId } from './outbox.js';

export const requestedStores = new Map(); /* db name -> [store definitions] the sync wants created */
const knownCaptured = new Set();          /* names this page opened with an outbox */

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
export function rawOf(db) {
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
export function lookAtDatabase(factory, name) {
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

export function createStore(db, def) {
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
export function openCaptured(factory, name, appVersion) {
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
 * saved getters (realStoreNames, realVersion) and rawTransaction.
 * `isCaptured(name)`: whether database `name` is captured. */
export function hideInternals(G, native, isCaptured) {
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
				if (!isCaptured(entry.name) || !(entry.version >= VERSION_FACTOR)) return entry;
				if (!knownCaptured.has(entry.name) && !(await lookAtDatabase(this, entry.name).catch(() => ({}))).hasOutbox) return entry;
				return { ...entry, version: appVersionOf(entry.version) };
			}));
		};
	}
}
