// The app: the "idb" promise wrapper, a store with an inline key and an
// index, many writes in one transaction.
import { openDB } from '/node_modules/idb/build/index.js';

const opened = openDB('idb-app', 1, {
	upgrade(db) {
		db.createObjectStore('books', { keyPath: 'isbn' }).createIndex('by-author', 'author');
	},
});

export async function putMany(prefix, n) {
	const db = await opened;
	const tx = db.transaction('books', 'readwrite');
	const puts = [];
	for (let i = 0; i < n; i++) puts.push(tx.store.put({ isbn: prefix + i, n: i, text: 'value ' + i, author: 'author ' + (i % 7) }));
	await Promise.all([...puts, tx.done]);
}
export const put = async (key, value) => (await opened).put('books', { ...value, isbn: key });
export const read = async key => (await opened).get('books', key);
export const remove = async key => (await opened).delete('books', key);
export const count = async () => (await opened).count('books');
export const byAuthor = async author => (await opened).getAllKeysFromIndex('books', 'by-author', author);
