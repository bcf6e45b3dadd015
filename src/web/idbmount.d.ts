/**
 * idbmount.js - keeps a browser's IndexedDB in sync with an idbmount daemon.
 *
 * Served by the daemon at /idbmount.js; import it as an ES module:
 *
 *     import { openDatabase } from '/idbmount.js';
 *     const db = await openDatabase('shop', { version: 1, stores: [{ name: 'orders', keyPath: 'id' }] });
 *     const sync = db.sync({ token });           // url defaults to the daemon the module came from
 *     await db.put('orders', { id: 5, total: 12.5 });
 *
 * Drop-in, for an app that already uses plain IndexedDB:
 *
 *     import { captureIndexedDB, startSync } from '/idbmount.js';
 *     captureIndexedDB({ databases: ['todo'] });  // before the app opens it
 *     startSync({ database: 'todo', token });
 *     // ... the app's unmodified indexedDB.open / put / delete / cursor code
 *
 * Capture: every put/add/delete/clear (IDBObjectStore) and update/delete
 * (IDBCursor) on a captured database is recorded in the SAME transaction:
 * one record listing what the writes of a task or event touched is
 * appended to the journal store of the same database, in a microtask right
 * behind them (no round trip of its own; a cursor loop makes one record
 * when it ends; no read of old values, no copy of values). A key known when
 * the write is made is listed as [store, key]; clear(), key-range deletes
 * and keys made by a key generator are listed as key sets that the sync
 * resolves into keys (the keys the server holds there; the new generated
 * keys). The sync compacts the journal into the outbox - one marker per key
 * with a mutation id that survives retries - so an edit storm ships once,
 * with the value the record holds at push time. Writes in upgrade
 * transactions are captured too, so seed and migrated data sync.
 *
 * Journal and outbox placement: inside the app's own database. Its real IndexedDB
 * version is `appVersion * 1024 + generation`; indexedDB.open is intercepted
 * so the app keeps seeing and asking for its own version numbers, and gets
 * upgradeneeded only when its own version rises. The library bumps
 * `generation` (an upgrade the app does not see) to add the outbox to a
 * database that existed before capture - its existing records are then
 * marked, so they sync - and to create stores made on the server. The
 * internal "__idbmount_*" stores and the library's share of the version
 * are hidden on every path of the API: objectStoreNames and version of a
 * connection and of a transaction (transaction.db, request.source, event
 * targets, cursors lead to the same objects), versionchange events,
 * indexedDB.databases(); a transaction or objectStore() of an internal
 * store fails with NotFoundError. (In Node over fake-indexeddb, whose
 * attributes are not prototype getters, only the connection open()
 * returns hides them.)
 *
 * Default conflict policy: SERVER WINS. The server's change-log sequence
 * decides, not clocks: a push whose base revision is stale is answered
 * "conflict"; the server's current value replaces the local one and a
 * `conflict` event carries the local value that lost.
 *
 * Record sync states: "pending" (a marker waits), "rejected" (the server or
 * the encoder refused it; the reason is in the `state` event and the marker
 * stays until the record is written again), "synced" (acknowledged, no
 * newer local write), "delivered" (synced, and the daemon reports a
 * pipeline took a change at or after it), "local" (never synced).
 */

/** Any IndexedDB key. */
export type Key = number | string | Date | ArrayBuffer | ArrayBufferView | Key[];

/** A key in the tagged JSON form of src/DESIGN.md ("Tagged JSON") and src/key.c. */
export type TaggedKey = number | string | { '~d': string } | { '~b': string } | { '~n': 'Infinity' | '-Infinity' } | TaggedKey[];

/** Tagged form of a key: numbers (infinities {"~n"}, -0 as 0), strings,
 * dates {"~d": ISO}, binary {"~b": base64url}, arrays. Throws on NaN and
 * anything that is not a key. */
export function encodeKey(key: Key): TaggedKey;
/** Reverse of encodeKey; binary keys come back as ArrayBuffer. */
export function decodeKey(tagged: unknown): Key;

/** Tagged JSON of a value: Date {"~d"}, ArrayBuffer {"~b"}, typed arrays and
 * DataView {"~b", type: "<constructor name>"}, Blob {"~b", type: "<mime>"},
 * NaN/Infinity/-Infinity/-0 {"~n"}, undefined {"~u": true}; an object
 * property whose name starts with "~" gets one more "~". Map, Set, class
 * instances and BigInt are refused (TypeError). */
export function encodeValue(value: unknown): Promise<unknown>;
export function decodeValue(tagged: unknown): unknown;

/** Real version = app version * VERSION_FACTOR + library generation. */
export const VERSION_FACTOR: 1024;

export interface CaptureOptions {
	/** Names (or a predicate) of the databases to capture; default: all. */
	databases?: string[] | ((name: string) => boolean);
	/** Stores of those databases that are neither captured nor synced (a
	 * library's helper stores, e.g. localforage's
	 * "local-forage-detect-blob-support"): they never reach the server nor
	 * the mount, and changes the server has for them are ignored. */
	excludeStores?: string[] | ((storeName: string, dbName: string) => boolean);
}
/** Installs the capture patches (once) and chooses the databases. Call it
 * before the app opens them. */
export function captureIndexedDB(options?: CaptureOptions): void;

export interface IndexSchema {
	name: string;
	keyPath: string | string[];
	unique?: boolean;
	multiEntry?: boolean;
}
export interface StoreSchema {
	name: string;
	keyPath?: string | string[] | null;
	autoIncrement?: boolean;
	indexes?: IndexSchema[];
}
export interface OpenOptions {
	version?: number;
	stores?: StoreSchema[];
	/** Runs in the upgrade transaction after the stores were created. */
	upgrade?: (db: IDBDatabase, tx: IDBTransaction, oldVersion: number, newVersion: number) => void;
}

export interface CursorOptions {
	query?: IDBValidKey | IDBKeyRange;
	direction?: IDBCursorDirection;
}

/** A store inside a library transaction. Keep to IndexedDB work between
 * awaits, or the transaction commits. */
export interface StoreHandle {
	readonly name: string;
	readonly raw: IDBObjectStore;
	put(value: unknown, key?: Key): Promise<IDBValidKey>;
	add(value: unknown, key?: Key): Promise<IDBValidKey>;
	delete(query: Key | IDBKeyRange): Promise<void>;
	clear(): Promise<void>;
	get(query: Key | IDBKeyRange): Promise<any>;
	getAll(query?: Key | IDBKeyRange | null, count?: number): Promise<any[]>;
	getAllKeys(query?: Key | IDBKeyRange | null, count?: number): Promise<IDBValidKey[]>;
	count(query?: Key | IDBKeyRange): Promise<number>;
	/** fn(cursor) per record; cursor.update()/delete() are captured; return
	 * false to stop. Resolves with the number of records visited. */
	each(opts: CursorOptions, fn: (cursor: IDBCursorWithValue) => boolean | void): Promise<number>;
	index(name: string): {
		get(q: Key | IDBKeyRange): Promise<any>;
		getAll(q?: Key | IDBKeyRange | null, n?: number): Promise<any[]>;
		getAllKeys(q?: Key | IDBKeyRange | null, n?: number): Promise<IDBValidKey[]>;
		count(q?: Key | IDBKeyRange): Promise<number>;
		each(opts: CursorOptions, fn: (cursor: IDBCursorWithValue) => boolean | void): Promise<number>;
	};
}

export interface TransactionHandle {
	readonly raw: IDBTransaction;
	store(name: string): StoreHandle;
}

export class Database {
	readonly name: string;
	/** The app's version. */
	readonly version: number | undefined;
	readonly storeNames: string[];
	/** The connection (reopened after another connection's upgrade). */
	connection(): Promise<IDBDatabase>;
	/** Resolves with fn's result once the transaction committed; a throw
	 * (or a rejected promise) aborts it, writes and outbox markers alike. */
	transaction<T>(stores: string | string[], mode: IDBTransactionMode, fn: (tx: TransactionHandle) => Promise<T> | T): Promise<T>;
	transaction<T>(stores: string | string[], fn: (tx: TransactionHandle) => Promise<T> | T): Promise<T>;
	put(store: string, value: unknown, key?: Key): Promise<IDBValidKey>;
	add(store: string, value: unknown, key?: Key): Promise<IDBValidKey>;
	delete(store: string, query: Key | IDBKeyRange): Promise<void>;
	clear(store: string): Promise<void>;
	get(store: string, query: Key | IDBKeyRange): Promise<any>;
	getAll(store: string, query?: Key | IDBKeyRange | null, count?: number): Promise<any[]>;
	getAllKeys(store: string, query?: Key | IDBKeyRange | null, count?: number): Promise<IDBValidKey[]>;
	count(store: string, query?: Key | IDBKeyRange): Promise<number>;
	each(store: string, opts: CursorOptions, fn: (cursor: IDBCursorWithValue) => boolean | void, mode?: IDBTransactionMode): Promise<number>;
	/** startSync({...options, database: this.name}). */
	sync(options: Omit<SyncOptions, 'database'>): Sync;
	close(): void;
}

/** Opens (creating or upgrading) a captured database with a schema. */
export function openDatabase(name: string, options?: OpenOptions): Promise<Database>;

/** What a `conflict` hook gets. */
export interface Conflict {
	store: string;
	key: Key;
	local: { deleted: boolean; value?: unknown };
	remote: { rev: number; deleted: boolean; value?: unknown };
}
/** "remote" (the default policy: server wins), "local" (push the local
 * value again on top of the server's revision), or {value} (push this
 * merged value; undefined deletes). */
export type ConflictResolution = 'remote' | 'local' | { value: unknown };

export interface SyncOptions {
	database: string;
	/** The daemon; default: the origin this module was loaded from. */
	url?: string;
	/** Bearer token from `idbmountctl client add`. */
	token: string;
	/** Mutations per push (default 1000; halved while the server answers 413). */
	batchSize?: number;
	/** Changes per pull page (default 1000). */
	pullLimit?: number;
	conflict?: (c: Conflict) => ConflictResolution | Promise<ConflictResolution>;
	/** Stores that exist on the server but not here: "upgrade" (default:
	 * create them in a version upgrade the app does not see; reported as not
	 * applied when another connection blocks it) or "report" (never upgrade,
	 * only report; their records wait, parked, until the store exists). */
	serverStores?: 'upgrade' | 'report';
	fetch?: typeof fetch;
	/** Use Web Locks to let one tab sync (default true where available). */
	lock?: boolean;
}

export interface SyncErrorInfo {
	/** offline | auth (401: revoked or wrong token; sync waits for
	 * setToken) | forbidden (403) | too-large (413) | client (other 4xx) |
	 * server (5xx, 429) | quota (the browser refused to store: an app
	 * transaction, rolled back as a whole and reported by every Sync of the
	 * tab that made it, or the sync's own acknowledgement or pulled page,
	 * rolled back and retried) | local */
	kind: 'offline' | 'auth' | 'forbidden' | 'too-large' | 'client' | 'server' | 'quota' | 'local';
	status: number;
	message: string;
	detail: unknown;
	at: string;
}

export interface SyncStatus {
	/** This tab holds the sync lock. */
	leader: boolean;
	online: boolean;
	syncing: boolean;
	/** Outbox length (pending + rejected markers), null until known. */
	outbox: number | null;
	lastError: SyncErrorInfo | null;
	checkpoint: number | null;
	/** The server data directory's epoch; another one means start over. */
	epoch: string | null;
	/** Every change up to this seq was taken by every pipeline (a batch
	 * parked or not yet taken holds it back), as the daemon reports it: in
	 * pull answers, and on the event stream while it covers more of
	 * this client's changes than before (once all of them are covered, a
	 * higher mark waits for this client's next change or pull). */
	delivered: number | null;
	/** Server stores that are not in this browser's database, and why. */
	notApplied: { store: string; reason: string }[];
	/** While the server fails: when the next attempt is (ms since the
	 * epoch); writes made meanwhile wait for it. Null otherwise. */
	retryAt: number | null;
	storage?: StorageHealth;
}

export interface StorageHealth {
	usage: number | null;
	quota: number | null;
	persisted: boolean | null;
}

export type RecordState = 'pending' | 'rejected' | 'synced' | 'delivered' | 'local';

/**
 * Events (each an Event with `detail`, or `status` for "status"):
 *   status    the SyncStatus changed (all tabs get the leader's)
 *   error     a SyncErrorInfo; nothing was lost, sync retries with backoff:
 *             one attempt per step (0.5 s doubling to 30 s, jittered) per
 *             database across tabs, new writes do not shorten it, going
 *             online does (for auth/forbidden it waits for setToken)
 *   change    [{store, key, op, rev, seq}] server changes applied locally
 *   state     {store, keys, state, reason?} records changed sync state, or
 *             {delivered} when the delivered mark moved
 *   conflict  Conflict & {resolution}
 *   schema    {applied: string[], reason} or {notApplied: string[], reason}
 */
export class Sync extends EventTarget {
	constructor(options: SyncOptions);
	readonly database: string;
	readonly state: SyncStatus;
	start(): void;
	stop(): void;
	setToken(token: string): void;
	/** In the syncing tab: push and pull now; false elsewhere. */
	syncNow(): Promise<boolean>;
	status(): Promise<SyncStatus>;
	outboxLength(): Promise<number>;
	recordState(store: string, key: Key): Promise<RecordState>;
	/** Canonical tagged-key JSON -> state, for every key with a marker or a
	 * known server revision. */
	recordStates(store: string): Promise<Map<string, RecordState>>;
	storeState(store: string): Promise<{ pending: number; rejected: number; synced: number; delivered: number }>;
	/** Folds the revisions acknowledgements recorded as one run per batch
	 * into per-record entries now (the syncing tab does it by itself once
	 * it has been quiet for a second); resolves with the runs folded. */
	foldRevisions(): Promise<number>;
}

/** Creates and starts a Sync. */
export function startSync(options: SyncOptions): Sync;

/** The one retry policy: exponential backoff with equal jitter. */
export class Backoff {
	constructor(baseMs?: number, capMs?: number);
	next(): number;
	reset(): void;
}

export class SyncError extends Error {
	kind: SyncErrorInfo['kind'];
	status: number;
	detail: unknown;
}

/** Server-Sent Events parser used for /v1/events (read with fetch, since
 * EventSource cannot send the Authorization header). */
export class SSEParser {
	constructor(onEvent: (ev: { event: string; data: string; id: string | null }) => void);
	push(text: string): void;
}

/** navigator.storage.estimate() and persisted(). */
export function storageHealth(): Promise<StorageHealth>;
/** navigator.storage.persist(): asks that the outbox never be evicted. */
export function requestPersistence(): Promise<boolean>;
