/* tabs.js - news about a database, within this tab and between tabs.
 *
 * Tabs (decision): one tab per database syncs (sync.js, a Web Lock). Every
 * tab still captures into the shared outbox, and a BroadcastChannel
 * ("idbmount:<db>") carries "dirty" (wake the syncing tab), "change" (the
 * server changed records) and "status" to the others. Within a tab,
 * listeners hear of new journal records ("dirty") and of app transactions
 * the browser refused for lack of room.
 */

export const dirtyListeners = new Map();   /* db name -> Set of callbacks (tab-local) */
export const refusedListeners = new Map(); /* db name -> Set of callbacks(error) for captured transactions the browser refused (tab-local) */
const channels = new Map();                /* db name -> BroadcastChannel */
const closedChannels = new Set();          /* db names whose channel stays shut (closeChannel) */

/* The channel of `dbName`, opened on first use; null where there is no
 * BroadcastChannel, and between closeChannel and reopenChannel. */
export function channelFor(dbName) {
	if (typeof BroadcastChannel !== 'function' || closedChannels.has(dbName)) return null;
	let ch = channels.get(dbName);
	if (!ch) {
		ch = new BroadcastChannel('idbmount:' + dbName);
		/* Node keeps the process alive for an open channel; browsers ignore it. */
		if (typeof ch.unref === 'function') ch.unref();
		channels.set(dbName, ch);
	}
	return ch;
}

/* Closes the channel of `dbName` until reopenChannel. A page in the
 * back/forward cache must not be reachable by one: Chromium evicts a
 * cached page that has a BroadcastChannel when a message arrives. It stays
 * shut, not opened again by whatever finishes after pagehide (an
 * acknowledgement's news, a pending "dirty"), which let the page be
 * evicted now and then. */
export function closeChannel(dbName) {
	closedChannels.add(dbName);
	const ch = channels.get(dbName);
	if (!ch) return;
	ch.close();
	channels.delete(dbName);
}

/* Opens the channel of `dbName` again (the page is shown once more). */
export function reopenChannel(dbName) {
	closedChannels.delete(dbName);
	return channelFor(dbName);
}

const pendingDirty = new Set();
let dirtyTimer = null;
let lastDirtyAt = -Infinity;
/* At most one round of "dirty" news per this many ms: an app writing one
 * record per transaction would otherwise wake the sync (and post to the
 * other tabs) once per write, which measured as much as the journal
 * record itself. */
const DIRTY_INTERVAL_MS = 50;
export const leadingHere = new Set(); /* databases this tab's Sync leads */

/* Tells this tab's Sync and the other tabs that the journal of `dbName`
 * grew: at once after a quiet moment, then at most once per
 * DIRTY_INTERVAL_MS while writes go on (the last ones are always told).
 * Sent when the journal record is written, before its transaction
 * commits: the sync's own transactions hold the journal too, so they run
 * after it. The other tabs are told only when this one does not sync the
 * database itself (only the syncing tab acts on it). */
export function announceDirty(dbName) {
	pendingDirty.add(dbName);
	if (dirtyTimer !== null) return;
	dirtyTimer = setTimeout(() => {
		dirtyTimer = null;
		lastDirtyAt = Date.now();
		for (const name of pendingDirty) {
			for (const cb of dirtyListeners.get(name) || []) cb();
			if (!leadingHere.has(name)) channelFor(name)?.postMessage({ type: 'dirty' });
		}
		pendingDirty.clear();
	}, Math.max(0, lastDirtyAt + DIRTY_INTERVAL_MS - Date.now()));
}
