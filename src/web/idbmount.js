/* idbmount.js - keeps a browser's IndexedDB in sync with an idbmount daemon.
 *
 * Plain ES modules, no build step: the daemon serves this entry at
 * /idbmount.js and the modules it imports at /idbmount/*.js, with the CORS
 * headers of its --allow-origin, so an app on another origin imports this
 * one URL. Three layers, each usable on its own:
 *
 *   capture   captureIndexedDB() patches the IndexedDB prototypes once, so
 *             that every write to a captured database is recorded IN THE
 *             SAME transaction, one journal record per task or event, with
 *             no read and no copy of a value (capture.js, journal.js); the
 *             internal stores live in the app's own database, behind a
 *             version of the library's own that the app never sees
 *             (versions.js, raw.js).
 *   library   openDatabase(name, {version, stores}) - a promise API built on
 *             the same captured IndexedDB (library.js).
 *   sync      startSync({database, url, token}) - pushes pending writes in
 *             batches, pulls with a persisted checkpoint, follows
 *             /v1/events, one syncing tab per database (sync.js, push.js,
 *             pull.js, events.js; what waits to be pushed: outbox.js; the
 *             revisions the local copy is based on: revisions.js).
 *
 * Keys and values travel as Tagged JSON (codec.js). The decisions are
 * written where they are made: each module's top comment.
 *
 * The modules form layers, each importing only those below it:
 *   codec, raw, tabs, failures, storage   no import of another module
 *   idb                                   codec
 *   journal                               raw, tabs
 *   revisions, outbox                     raw, codec, idb (outbox: revisions)
 *   versions                              raw, journal, outbox
 *   capture                               raw, journal, versions
 *   events                                failures
 *   push, pull                            the above (pull: versions)
 *   sync                                  the above
 *   library                               idb, capture, versions, sync
 * Every module is named below, so a browser fetches them all at once
 * instead of one layer after another.
 */
import { JOURNAL, OUTBOX, REVS, META, INTERNAL_STORES, silentTransactions, rawTransaction } from './idbmount/raw.js';
import { rawOf } from './idbmount/versions.js';
import './idbmount/tabs.js';
import './idbmount/idb.js';
import './idbmount/journal.js';
import './idbmount/revisions.js';
import './idbmount/outbox.js';
import './idbmount/push.js';
import './idbmount/pull.js';

export { VERSION_FACTOR } from './idbmount/raw.js';
export { encodeKey, decodeKey, encodeValue, decodeValue } from './idbmount/codec.js';
export { captureIndexedDB } from './idbmount/capture.js';
export { Database, openDatabase } from './idbmount/library.js';
export { Backoff, SyncError } from './idbmount/failures.js';
export { SSEParser } from './idbmount/events.js';
export { startSync, Sync } from './idbmount/sync.js';
export { storageHealth, requestPersistence } from './idbmount/storage.js';

/* For tests and tools: the internal store names, and a transaction over
 * any stores of a connection, internal ones included. */
export const internals = {
	JOURNAL, OUTBOX, REVS, META, INTERNAL_STORES, silentTransactions,
	transaction: (db, storeNames, mode) => rawTransaction(rawOf(db), storeNames, mode),
};
