// The app: idb-keyval's default store ("keyval-store" / "keyval"), through
// idb-keyval's own API only; one transaction per write.
import { get, set, del, keys } from '/node_modules/idb-keyval/dist/index.js';

export async function putMany(prefix, n) {
	for (let i = 0; i < n; i++) await set(prefix + i, { n: i, text: 'value ' + i });
}
export const put = (key, value) => set(key, value);
export const read = key => get(key);
export const remove = key => del(key);
export const count = async () => (await keys()).length;
