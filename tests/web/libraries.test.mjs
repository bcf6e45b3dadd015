// Drop-in capture under widely used IndexedDB libraries, driven only through
// their own APIs, in Debian's Chromium against the real daemon and its real
// FUSE mount. The app pages (tests/web/apps) are served from an origin of
// their own and import /idbmount.js from the daemon, which allows that
// origin (--allow-origin), as an app served elsewhere does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { launchChromium } from './chromium.mjs';
import { Daemon, eventually } from './daemon.mjs';
import { AppServer } from './appserver.mjs';


let d;
let apps;
let token;
let browser;
let context;
const pageErrors = [];
before(async () => {
	apps = await new AppServer().start();
	d = new Daemon(['--allow-origin', apps.url]);
	token = d.addClient('libs');
	await d.start();
	apps.daemonUrl = d.url;
	browser = await launchChromium();
	context = await browser.newContext();
});
after(async () => {
	await browser?.close();
	await apps?.stop();
	await d?.cleanup();
	assert.deepEqual(pageErrors, [], 'no page raised an uncaught error');
});

/* The libraries, the database and store each one makes (so where its
 * records appear: <client>/<database>/<store>/<key>.json), and the helper
 * store each page excludes from sync. */
const LIBRARIES = [
	{ name: 'idb-keyval', page: 'keyval', db: 'keyval-store', store: 'keyval', writes: 1000 },
	{ name: 'localforage', page: 'localforage', db: 'localforage', store: 'keyvaluepairs', writes: 1000, excluded: 'local-forage-detect-blob-support' },
	{ name: 'idb', page: 'idb', db: 'idb-app', store: 'books', writes: 500 },
	{ name: 'Dexie', page: 'dexie', db: 'friends', store: 'friends', writes: 1000 },
	{ name: 'PouchDB', page: 'pouchdb', db: '_pouch_notes', store: 'document-store', writes: 300, excluded: 'detect-blob-support' },
];
const pages = new Map(); /* library name -> its page, kept open across tests */

async function openApp(lib, query = '') {
	const page = await context.newPage();
	page.on('pageerror', err => {
		if (!String(err.message).includes('the app\'s upgrade failed')) pageErrors.push(`${lib.page}${query}: ${err.stack || err}`);
	});
	await page.goto(`${apps.url}/${lib.page}.html${query}#token=${token}`);
	await page.waitForFunction(() => window.app && window.sync, null, { timeout: 30000 });
	return page;
}

function dir(lib, store = lib.store) {
	return d.path('libs', lib.db, store);
}

function filesOf(lib, prefix, store = lib.store) {
	try {
		return fs.readdirSync(dir(lib, store)).filter(f => f.startsWith(prefix) && f.endsWith('.json'));
	} catch {
		return [];
	}
}

function changesOf(lib) {
	return d.changes().filter(c => c.client === 'libs' && c.db === lib.db);
}

const call = (page, fn, ...args) => page.evaluate(([fn, args]) => window.app[fn](...args), [fn, args]);

/* The record file of `key`: for PouchDB the document's body in
 * by-sequence (found with grep, as a person would), else <store>/<key>. */
function recordFile(lib, key) {
	if (lib.name !== 'PouchDB') return `${dir(lib)}/${key}.json`;
	const out = d.sh(`grep -l '"_doc_id_rev": "${key}::' '${dir(lib, 'by-sequence')}'/*.json || true`).trim().split('\n').filter(Boolean);
	return out.length ? out.at(-1) : null;
}

/* What one new PouchDB document writes: its entry, a new body (a
 * sequence number past the first writes), PouchDB's own counters. */
function newPouchWrite(c) {
	return (c.store === 'document-store' && c.key === 'after-reload') || (c.store === 'by-sequence' && c.key > 300) || c.store === 'meta-store';
}

async function outboxEmpty(page) {
	await eventually(() => page.evaluate(async () => window.sync.state.leader && (await window.sync.outboxLength()) === 0), 'an empty outbox');
}

for (const lib of LIBRARIES) {
	test(`${lib.name}: its writes appear on the mount, edits on the mount reach its reads, a reload pushes nothing twice`, async () => {
		const page = await openApp(lib);
		pages.set(lib.name, page);
		await call(page, 'putMany', 'k-', lib.writes);
		await eventually(() => filesOf(lib, 'k-').length === lib.writes, `${lib.writes} records of ${lib.name} in the mount`, 60000);
		const file7 = recordFile(lib, 'k-7');
		assert.equal(JSON.parse(fs.readFileSync(file7, 'utf8')).text, 'value 7');
		if (lib.excluded) assert.equal(fs.existsSync(dir(lib, lib.excluded)), false, `${lib.excluded} is excluded from sync and from the mount`);
		await outboxEmpty(page);

		// sed -i, echo > and rm on the mount, read back through the library.
		d.sh(`sed -i 's/"value 3"/"edited with sed"/' '${recordFile(lib, 'k-3')}'`);
		await eventually(() => call(page, 'read', 'k-3').then(v => v?.text === 'edited with sed'), 'the sed -i edit in the library\'s read');
		if (lib.name === 'PouchDB') {
			// A document is its entry in document-store (its body lives in by-sequence).
			fs.rmSync(`${dir(lib)}/k-5.json`);
		} else {
			d.sh(`echo '{"n": 4, "text": "written with echo"}' > '${dir(lib)}/k-4.json'`);
			await eventually(() => call(page, 'read', 'k-4').then(v => v?.text === 'written with echo'), 'the echo > in the library\'s read');
			d.sh(`echo '{"n": -1, "text": "a new record made with echo"}' > '${dir(lib)}/made-on-the-mount.json'`);
			await eventually(() => call(page, 'read', 'made-on-the-mount').then(v => v?.text === 'a new record made with echo'), 'a new file in the library\'s read');
			fs.rmSync(`${dir(lib)}/k-5.json`);
		}
		await eventually(() => call(page, 'read', 'k-5').then(v => v === undefined), 'the rm in the library\'s read');
		await outboxEmpty(page);

		// A reload keeps everything and pushes nothing twice: the only new
		// change is the write made after it.
		const before = changesOf(lib).length;
		const count = await call(page, 'count');
		await page.reload();
		await page.waitForFunction(() => window.app && window.sync);
		assert.equal(await call(page, 'count'), count);
		assert.equal((await call(page, 'read', 'k-3')).text, 'edited with sed');
		await call(page, 'put', 'after-reload', { n: 0, text: 'written after the reload' });
		await eventually(() => recordFile(lib, 'after-reload') && fs.existsSync(recordFile(lib, 'after-reload')), 'the write after the reload');
		await outboxEmpty(page);
		const fresh = changesOf(lib).slice(before);
		assert.ok(fresh.some(c => c.key === 'after-reload'));
		assert.ok(fresh.every(lib.name === 'PouchDB' ? newPouchWrite : c => c.key === 'after-reload'),
			`only the new write was pushed: ${JSON.stringify(fresh.map(c => [c.store, c.key]))}`);
	});
}

/* Runs `fn` with the daemon stopped; it is started again in any case. */
async function whileDown(fn) {
	assert.equal(await d.stop(), 0);
	try {
		await fn();
	} finally {
		await d.start();
	}
}

test('writes made with each library while the daemon is down arrive after it returns', async () => {
	await whileDown(async () => {
		for (const lib of LIBRARIES) await call(pages.get(lib.name), 'putMany', 'offline-', 20);
		await eventually(() => Promise.all(LIBRARIES.map(lib => pages.get(lib.name).evaluate(() => window.sync.state.lastError?.kind === 'offline')))
			.then(all => all.every(Boolean)), 'every page to report the daemon offline');
	});
	for (const lib of LIBRARIES)
		await eventually(() => filesOf(lib, 'offline-').length === 20, `${lib.name}'s writes made while the daemon was down`, 60000);
});

test('Dexie: two tabs at once, update, delete and where().modify(), a release with a changed schema, the old tabs going on', async () => {
	const lib = LIBRARIES.find(l => l.name === 'Dexie');
	const a = pages.get('Dexie');
	const b = await openApp(lib);
	const since = d.changes().at(-1).seq;
	await Promise.all([call(a, 'putMany', 'a-', 300), call(b, 'putMany', 'b-', 300)]);
	await eventually(() => filesOf(lib, 'a-').length === 300 && filesOf(lib, 'b-').length === 300, 'both tabs\' records in the mount');
	const pushed = d.changes(since).filter(c => c.db === lib.db && /^[ab]-/.test(c.key));
	assert.equal(pushed.length, 600, 'exactly one change per record');
	assert.deepEqual((await Promise.all([a, b].map(p => p.evaluate(() => window.sync.state.leader)))).sort(), [false, true], 'one tab syncs');

	await call(b, 'update', 'a-1', { age: 99, city: 'Oslo' });
	await call(a, 'remove', 'b-2');
	await call(a, 'markYoung');
	const file = key => `${dir(lib)}/${key}.json`;
	await eventually(() => fs.existsSync(file('a-1')) && JSON.parse(fs.readFileSync(file('a-1'), 'utf8')).age === 99, 'the update on the mount');
	await eventually(() => !fs.existsSync(file('b-2')), 'the delete on the mount');
	await eventually(() => JSON.parse(fs.readFileSync(file('b-29'), 'utf8')).young === true, 'modify() on the mount');
	assert.equal(JSON.parse(fs.readFileSync(file('b-30'), 'utf8')).young, undefined);
	d.sh(`sed -i 's/"name 0"/"renamed on the mount"/' '${file('a-0')}'`);
	await eventually(() => call(b, 'read', 'a-0').then(v => v?.name === 'renamed on the mount'), 'the mount edit in the other tab');

	// The app's next release: a new index and a new table. Dexie upgrades
	// (its native version 20); the tabs of the old release are told, let go,
	// and reopen at the version they find.
	const c = await openApp(lib, '?v=2');
	assert.deepEqual(await call(c, 'shape'), { verno: 2, tables: ['friends', 'notes'] });
	assert.deepEqual(await call(c, 'inCity', 'Oslo'), ['a-1'], 'the new index covers the records already there');
	await call(c, 'addNote', 'a-1', 'met in Oslo');
	await eventually(() => filesOf(lib, '', 'notes').length === 1, 'the new table\'s record on the mount');
	const note = `${dir(lib, 'notes')}/${filesOf(lib, '', 'notes')[0]}`;
	assert.deepEqual(JSON.parse(fs.readFileSync(note, 'utf8')), { friendId: 'a-1', text: 'met in Oslo', id: 1 });
	d.sh(`sed -i 's/met in Oslo/met in Bergen/' '${note}'`);
	await eventually(() => call(c, 'notesOf', 'a-1').then(n => n[0]?.text === 'met in Bergen'), 'the mount edit of the new table');
	await call(a, 'put', 'a-after-upgrade', { n: 1, name: 'written by the old release', age: 1 });
	assert.equal((await call(b, 'read', 'a-1')).city, 'Oslo');
	await eventually(() => fs.existsSync(file('a-after-upgrade')), 'a write of the old release after the upgrade');
	assert.deepEqual(await c.evaluate(async () => (await indexedDB.databases()).filter(x => x.name === 'friends')), [{ name: 'friends', version: 20 }]);
	await b.close();
	await c.close();
});

test('no internal store or library version is visible on any path of the IndexedDB API; journal records per task and per cursor loop', async () => {
	const page = await openApp({ page: 'probe' });
	const seen = await call(page, 'run');
	const app = ['items', 'tags'];
	assert.deepEqual(seen.upgrade, { versions: [0, 1], targetIsRequest: true, requestTypes: [true, true], db: app, tx: app, txDb: app, txDbVersion: 1, sameConnection: true });
	assert.deepEqual(seen.success, { db: app, version: 1, isList: true });
	assert.deepEqual(seen.readwrite, { tx: app, txDb: app, sameConnection: true, requestSource: app, requestTransactionDb: app, journal: 'NotFoundError' });
	assert.deepEqual(seen.cursor, { sourceDb: app, contains: false });
	assert.deepEqual(seen.refused, { transaction: 'NotFoundError', transactionAmongOthers: 'NotFoundError' });
	assert.deepEqual(seen.readonly, { tx: app, txDb: app });
	assert.deepEqual(seen.databases, [{ name: 'probe-app', version: 1 }]);
	assert.deepEqual(seen.versionchange, { versions: [1, 2], target: app, targetVersion: 1 });
	assert.deepEqual(seen.upgrade2, { versions: [1, 2], tx: app, deleteInternal: 'NotFoundError' });
	assert.deepEqual(seen.after, { db: ['items', 'more', 'tags'], version: 2 });
	assert.equal(seen.throwingUpgrade, 'AbortError');
	assert.deepEqual(seen.afterThrow, { version: 2, db: ['items', 'more', 'tags'] });
	// The journal record rides with the writes of one task or event; a
	// cursor loop makes one when it ends, however it is driven.
	assert.deepEqual(await call(page, 'journalRecords'), { oneTask: 1, twoEvents: 2, handlerLoop: 1, promiseLoop: 1 });
	await page.close();
});

/* Attempts a sync failing since `ms` ago may have made: the first one(s)
 * that find the server gone (the event stream's reconnect and a round can
 * both be first), then one per backoff step. Backoff(500 ms, 30 s) waits at
 * least half of each step: 250, 500, 1000, 2000, ... ms. */
function attemptsAllowed(ms) {
	let n = 2;
	for (let step = 250, at = 250; at <= ms; step *= 2, at += step) n += 1;
	return n;
}

test('while the daemon is down, 1,000 writes in two tabs make one attempt per backoff step, and arrive once it returns', async t => {
	for (const [name, page] of pages) if (name !== 'idb-keyval') await page.close();
	const lib = LIBRARIES[0];
	const a = pages.get('idb-keyval');
	const b = await openApp(lib);
	await eventually(() => Promise.all([a, b].map(p => p.evaluate(async () => window.sync.state.leader && (await window.sync.outboxLength()) === 0)))
		.then(both => both.some(Boolean)), 'a syncing tab with an empty outbox');
	await whileDown(async () => {
		// A listener of the test's own on the daemon's port: every attempt
		// is a connection, answered by closing it.
		let connections = 0;
		const listener = net.createServer(socket => {
			connections += 1;
			socket.destroy();
		});
		await new Promise(resolve => listener.listen(d.port, '127.0.0.1', resolve));
		try {
			const downSince = Date.now();
			const writing = call(a, 'putMany', 'down-', 1000);
			// Half way, the syncing tab is hidden: the other one takes over,
			// and waits out the same backoff step.
			await eventually(() => call(a, 'count').then(n => n > lib.writes + 500), 'half of the writes');
			const leader = (await a.evaluate(() => window.sync.state.leader)) ? a : b;
			await leader.evaluate(() => {
				Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
				document.dispatchEvent(new Event('visibilitychange'));
			});
			const follower = leader === a ? b : a;
			await follower.waitForFunction(() => window.sync.state.leader);
			await writing;
			await call(follower, 'putMany', 'down-b-', 100);
			await new Promise(resolve => setTimeout(resolve, Math.max(0, 6000 - (Date.now() - downSince))));
			const elapsed = Date.now() - downSince;
			const attempts = connections;
			t.diagnostic(`${attempts} connection attempts in ${elapsed} ms with the daemon down (at most ${attemptsAllowed(elapsed)} allowed)`);
			assert.ok(attempts >= 1, 'the sync did try');
			assert.ok(attempts <= attemptsAllowed(elapsed), `${attempts} attempts in ${elapsed} ms while the daemon was down; at most ${attemptsAllowed(elapsed)} (one per backoff step)`);
			assert.ok(await follower.evaluate(() => window.sync.state.retryAt !== null), 'the status tells when the next attempt is');
		} finally {
			await new Promise(resolve => listener.close(resolve));
		}
	});
	await eventually(() => filesOf(lib, 'down-').length === 1100, 'the writes made while the daemon was down', 60000);
	await b.close();
});
