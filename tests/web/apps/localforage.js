// The app: localforage's default instance (IndexedDB driver: database
// "localforage", store "keyvaluepairs"), through its own API only; one
// transaction per setItem.
import '/node_modules/localforage/dist/localforage.js';

const store = window.localforage;

export async function putMany(prefix, n) {
	for (let i = 0; i < n; i++) await store.setItem(prefix + i, { n: i, text: 'value ' + i });
}
export const put = (key, value) => store.setItem(key, value);
export const read = async key => (await store.getItem(key)) ?? undefined;
export const remove = key => store.removeItem(key);
export const count = () => store.length();
export const driver = () => store.driver();
