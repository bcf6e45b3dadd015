// The app: PouchDB's browser build with its default IndexedDB adapter
// ("idb": database "_pouch_notes", documents in "document-store", bodies in
// "by-sequence"), through PouchDB's own API only.
import '/node_modules/pouchdb/dist/pouchdb.min.js';

export const db = new window.PouchDB('notes');

export async function putMany(prefix, n) {
	const docs = [];
	for (let i = 0; i < n; i++) docs.push({ _id: prefix + i, n: i, text: 'value ' + i });
	const results = await db.bulkDocs(docs);
	const failed = results.filter(r => !r.ok);
	if (failed.length) throw new Error('bulkDocs: ' + JSON.stringify(failed[0]));
}
async function current(key) {
	try {
		return await db.get(key);
	} catch (err) {
		if (err.status === 404) return undefined;
		throw err;
	}
}
export async function put(key, value) {
	const doc = await current(key);
	await db.put({ ...value, _id: key, ...(doc ? { _rev: doc._rev } : {}) });
}
export async function read(key) {
	const doc = await current(key);
	if (!doc) return undefined;
	const { _id, _rev, ...value } = doc;
	return value;
}
export async function remove(key) {
	const doc = await current(key);
	if (doc) await db.remove(doc);
}
/* The documents there are now (info().doc_count is a count PouchDB keeps
 * itself, which a document removed on the mount does not update). */
export const count = async () => (await db.allDocs()).rows.length;
