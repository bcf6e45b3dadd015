// The app: Dexie 4, a table with an inline primary key and indexes;
// ?v=2 is the next release of the app, with a changed schema.
import Dexie from '/node_modules/dexie/dist/dexie.mjs';

const release = Number(new URLSearchParams(location.search).get('v') || 1);
export const db = new Dexie('friends');
db.version(1).stores({ friends: 'id, name, age' });
if (release >= 2) db.version(2).stores({ friends: 'id, name, age, city', notes: '++id, friendId' });

export async function putMany(prefix, n) {
	const rows = [];
	for (let i = 0; i < n; i++) rows.push({ id: prefix + i, n: i, text: 'value ' + i, name: 'name ' + i, age: i % 90 });
	await db.friends.bulkPut(rows);
}
export const put = (key, value) => db.friends.put({ ...value, id: key });
export const read = key => db.friends.get(key);
export const remove = key => db.friends.delete(key);
export const count = () => db.friends.count();
export const update = (key, changes) => db.friends.update(key, changes);
export const markYoung = () => db.friends.where('age').below(30).modify({ young: true });
export const addNote = (friendId, text) => db.notes.add({ friendId, text });
export const notesOf = friendId => db.notes.where('friendId').equals(friendId).toArray();
export const inCity = city => db.friends.where('city').equals(city).primaryKeys();
export const shape = () => ({ verno: db.verno, tables: db.tables.map(t => t.name).sort() });
