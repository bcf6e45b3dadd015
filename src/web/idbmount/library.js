/* library.js - openDatabase(name, {version, stores}): a promise API (put,
 * add, delete, clear, get, getAll, each/cursors, transactions over several
 * stores) built on the same captured IndexedDB, so its writes sync like any
 * other.
 */
import { done, finished, openRequest } from './idb.js';
import { ensureCaptureOf } from './capture.js';
import { createStore } from './versions.js';
import { startSync } from './sync.js';

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
