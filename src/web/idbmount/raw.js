/* raw.js - what the library itself sees beneath its own patches: the
 * internal stores, the unpatched IndexedDB methods, and its own
 * transactions. Every other module reads and writes through these, so the
 * app's view (versions.js hides the internal stores) never gets in the way.
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
 *                      revisions.js), newest revision wins
 *   __idbmount_meta    "checkpoint", "delivered", "epoch", "installId",
 *                      "retry" (a backoff step under way, see noteFailure),
 *                      ["parked", store, key] (changes for missing stores),
 *                      ["generated", store] (see keysOfSet)
 */

export const INTERNAL_PREFIX = '__idbmount_';
export const JOURNAL = '__idbmount_journal';
export const OUTBOX = '__idbmount_outbox';
export const REVS = '__idbmount_revs';
export const META = '__idbmount_meta';
export const INTERNAL_STORES = [JOURNAL, OUTBOX, REVS, META];

/* real version = app version * VERSION_FACTOR + library generation. 1024
 * leaves room for Date.now()-style app versions below 2^53. */
export const VERSION_FACTOR = 1024;

export const native = {};                        /* the unpatched methods and attribute getters (capture.js fills it) */
export const capturedDatabases = new WeakSet();  /* raw IDBDatabase connections with an outbox */
export const silentTransactions = new WeakSet(); /* the sync loop's own writes: not captured */
export const exclusions = [];                    /* (dbName, storeName) => bool: stores neither captured nor synced */

export function isInternalStoreName(name) {
	return typeof name === 'string' && name.startsWith(INTERNAL_PREFIX);
}

/* Whether store `storeName` of database `dbName` is left out of capture
 * and sync (captureIndexedDB's excludeStores). */
export function isExcluded(dbName, storeName) {
	for (const excluded of exclusions) if (excluded(dbName, storeName)) return true;
	return false;
}

/* The app version inside a captured database's real version. */
export function appVersionOf(real) {
	return Math.floor(real / VERSION_FACTOR);
}

/* What the library reads on a raw connection or transaction: the real
 * version and every store name, internal ones included (the app's getters
 * are patched, see hideInternals). */
export function realVersion(db) {
	return native.dbVersion ? native.dbVersion.call(db) : db.version;
}

export function realStoreNames(dbOrTx) {
	const getter = typeof IDBTransaction === 'function' && dbOrTx instanceof IDBTransaction ? native.txStoreNames : native.dbStoreNames;
	return Array.from(getter ? getter.call(dbOrTx) : dbOrTx.objectStoreNames);
}

export const libraryTransactions = new WeakSet(); /* made by rawTransaction: internal stores reachable */

/* A transaction of the library's own: any stores, internal ones included,
 * never widened by capture. */
export function rawTransaction(db, storeNames, mode = 'readonly', options = undefined) {
	const tx = options === undefined ? native.transaction.call(db, storeNames, mode) : native.transaction.call(db, storeNames, mode, options);
	libraryTransactions.add(tx);
	return tx;
}

export function notFound(what) {
	const message = `idbmount: ${what}: no such object store`;
	return typeof DOMException === 'function' ? new DOMException(message, 'NotFoundError') : new Error(message);
}

/* Durability of the sync's own read-write transactions (acknowledgements,
 * applied pulls, compaction): "relaxed" skips the flush to disk. Safe,
 * because losing one to a power cut only repeats work: a push is retried
 * with the same mutation ids (the server answers as the first time) and a
 * pull starts again from the older checkpoint. App transactions keep
 * their own durability. */
export const RELAXED = { durability: 'relaxed' };
