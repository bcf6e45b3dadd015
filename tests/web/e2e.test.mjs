// End to end in real Chromium (Debian's /usr/bin/chromium through
// playwright-core) against a real daemon and its real FUSE mount. The pages
// come from the daemon: the demo page at / (which exposes window.demo =
// {db, sync}), and a small raw-IndexedDB app put into a page of the
// daemon's origin for the drop-in test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium } from './chromium.mjs';
import { Daemon, eventually } from './daemon.mjs';

const ARTIFACTS = process.env.IDBMOUNT_WEB_ARTIFACTS || path.join(os.tmpdir(), 'idbmount-web-artifacts');

let d;
let token;
let carolToken; /* a client of its own for the screenshot: a short list */
let browser;
before(async () => {
	d = new Daemon();
	token = d.addClient('alice');
	carolToken = d.addClient('carol');
	await d.start();
	// The daemon embeds src/web at build time: a stale build tests old code.
	for (const [url, file] of [['/idbmount.js', 'idbmount.js'], ['/', 'demo.html']]) {
		const served = await (await fetch(d.url + url)).text();
		assert.equal(served, fs.readFileSync(new URL(`../../src/web/${file}`, import.meta.url), 'utf8'),
			`${url} is not src/web/${file}: rebuild (cmake --build) before testing`);
	}
	browser = await launchChromium();
});
after(async () => {
	await browser?.close();
	await d?.cleanup();
});

/* Opens the demo page in `context` and waits until its sync is running. */
async function demoPage(context, { leader = true, as = token } = {}) {
	const page = await context.newPage();
	page.on('pageerror', err => console.error('page error:', err.stack));
	await page.goto(`${d.url}/#token=${as}`);
	await page.waitForFunction(() => window.demo && window.demo.sync);
	if (leader) await page.waitForFunction(() => window.demo.sync.state.leader);
	return page;
}

function notes(...file) {
	return d.path('alice', 'demo', 'notes', ...file);
}

function readJson(file) {
	const text = fs.readFileSync(file, 'utf8');
	assert.ok(text.endsWith('\n'));
	return JSON.parse(text);
}

/* In the page: every key type (built there, so they are real Dates and
 * ArrayBuffers), as [key, file name] pairs by index. */
const EVERY_KEY = `[
	[42, '42.json'], [-1.5, '-1.5.json'], [1e21, '1e+21.json'], [-Infinity, '-Infinity.json'],
	['alice', 'alice.json'], ['a/b', 'a%2Fb.json'], ['42', '%342.json'], ['', '~s.json'], ['.hidden', '%2Ehidden.json'],
	[new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), '~d2026-01-02T03:04:05.000Z.json'],
	[new Uint8Array([0, 1, 2]).buffer, '~bAAEC.json'],
	[['u1', 7], '~a["u1",7].json'],
]`;

test('every key type, offline writes and a closed tab all reach the mount with exact content', async () => {
	const context = await browser.newContext();
	let page = await demoPage(context);
	const files = await page.evaluate(async src => {
		const pairs = eval(src);
		for (const [key, file] of pairs) await window.demo.db.put('notes', { file, at: new Date(Date.UTC(2026, 10, 23)), bin: new Uint8Array([1, 2]) }, key);
		return pairs.map(p => p[1]);
	}, EVERY_KEY);
	for (const file of files) {
		await eventually(() => fs.existsSync(notes(file)), file + ' in the mount');
		assert.deepEqual(readJson(notes(file)), { file, at: { '~d': '2026-11-23T00:00:00.000Z' }, bin: { '~b': 'AQI', type: 'Uint8Array' } });
	}
	await eventually(() => page.evaluate(() => window.demo.sync.recordState('notes', 42)).then(s => s === 'synced'), 'record 42 synced');

	// Offline: writes wait in the outbox, also across closing the tab.
	await context.setOffline(true);
	await page.evaluate(async () => {
		for (let i = 0; i < 20; i++) await window.demo.db.put('notes', { offline: i }, 'offline-' + i);
		await window.demo.db.put('notes', { edited: true }, 42);
	});
	await eventually(() => page.evaluate(() => window.demo.sync.state.lastError?.kind === 'offline' || !window.demo.sync.state.online), 'the page to notice it is offline');
	assert.equal(await page.evaluate(() => window.demo.sync.recordState('notes', 'offline-3')), 'pending');
	await page.close();
	assert.equal(fs.existsSync(notes('offline-0.json')), false, 'nothing left the browser while offline');
	await context.setOffline(false);
	page = await demoPage(context);
	for (let i = 0; i < 20; i++) {
		await eventually(() => fs.existsSync(notes(`offline-${i}.json`)), `offline-${i}.json`);
		assert.deepEqual(readJson(notes(`offline-${i}.json`)), { offline: i });
	}
	await eventually(() => readJson(notes('42.json')).edited === true, 'the offline edit of 42');
	await eventually(() => page.evaluate(() => window.demo.sync.outboxLength()).then(n => n === 0), 'an empty outbox');

	// Offline and back online within one live tab: the online event resumes.
	await context.setOffline(true);
	await page.evaluate(() => window.demo.db.put('notes', 'while offline', 'live-offline'));
	await eventually(() => page.evaluate(() => !window.demo.sync.state.online), 'the live tab to go offline');
	await context.setOffline(false);
	await eventually(() => fs.existsSync(notes('live-offline.json')), 'the write made offline in a live tab');
	await context.close();
});

test('sed -i and rm on the mount reach the page\'s IndexedDB live', async () => {
	const context = await browser.newContext();
	const page = await demoPage(context);
	await page.evaluate(() => window.demo.db.put('notes', { text: 'colour' }, 'live'));
	await eventually(() => fs.existsSync(notes('live.json')), 'live.json');
	await page.evaluate(() => window.demo.sync.syncNow());
	d.sh(`sed -i 's/colour/color/' '${notes('live.json')}'`);
	await eventually(() => page.evaluate(() => window.demo.db.get('notes', 'live')).then(v => v && v.text === 'color'), 'the sed -i edit in the page');
	fs.rmSync(notes('live.json'));
	await eventually(() => page.evaluate(() => window.demo.db.get('notes', 'live')).then(v => v === undefined), 'the rm in the page');
	assert.equal(await page.evaluate(() => window.demo.sync.outboxLength()), 0, 'applied changes are not echoed');
	// The demo table shows it too.
	await eventually(() => page.evaluate(() => !document.querySelector('tr[data-key=\'"live"\']')), 'the row to disappear');
	await context.close();
});

test('two tabs writing at once lose and duplicate nothing', async () => {
	const context = await browser.newContext();
	const a = await demoPage(context);
	const b = await demoPage(context, { leader: false });
	const since = d.changes().at(-1).seq;
	const write = (page, tab) => page.evaluate(async tab => {
		for (let i = 0; i < 150; i++) await window.demo.db.put('notes', { tab, i }, `tab-${tab}-${i}`);
	}, tab);
	await Promise.all([write(a, 'a'), write(b, 'b')]);
	for (const tab of ['a', 'b'])
		for (let i = 0; i < 150; i++)
			await eventually(() => fs.existsSync(notes(`tab-${tab}-${i}.json`)), `tab-${tab}-${i}.json`);
	const changes = d.changes(since).filter(c => c.db === 'demo' && String(c.key).startsWith('tab-'));
	assert.equal(changes.length, 300, 'exactly one change per record');
	assert.equal(new Set(changes.map(c => c.key)).size, 300);
	const leaders = await Promise.all([a, b].map(p => p.evaluate(() => window.demo.sync.state.leader)));
	assert.deepEqual(leaders.sort(), [false, true], 'exactly one tab syncs');
	// The other tab learns through BroadcastChannel and sees the records.
	const count = await b.evaluate(() => window.demo.db.getAllKeys('notes').then(k => k.filter(x => String(x).startsWith('tab-')).length));
	assert.equal(count, 300);
	// Closing the syncing tab hands sync to the other one.
	const leaderIsA = await a.evaluate(() => window.demo.sync.state.leader);
	await (leaderIsA ? a : b).close();
	const remaining = leaderIsA ? b : a;
	await remaining.waitForFunction(() => window.demo.sync.state.leader);
	await remaining.evaluate(() => window.demo.db.put('notes', 'after handover', 'handover'));
	await eventually(() => fs.existsSync(notes('handover.json')), 'a write after the handover');
	await context.close();
});

test('a hidden tab lets go of sync and another tab takes over', async () => {
	const context = await browser.newContext();
	const a = await demoPage(context);
	const b = await demoPage(context, { leader: false });
	assert.equal(await b.evaluate(() => window.demo.sync.state.leader), false);
	// Headless pages are always visible: make A's document say hidden.
	await a.evaluate(() => {
		Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
		document.dispatchEvent(new Event('visibilitychange'));
	});
	await b.waitForFunction(() => window.demo.sync.state.leader);
	await a.waitForFunction(() => !window.demo.sync.state.leader);
	// A still captures; B ships it.
	await a.evaluate(() => window.demo.db.put('notes', 'written in the hidden tab', 'hidden-write'));
	await eventually(() => fs.existsSync(notes('hidden-write.json')), 'the hidden tab\'s write, shipped by the other');
	await context.close();
});

test('the same record changed on the mount and in the page ends as the policy says (server wins)', async () => {
	const context = await browser.newContext();
	const page = await demoPage(context);
	await page.evaluate(() => window.demo.db.put('notes', { v: 'start' }, 'contested'));
	await eventually(() => fs.existsSync(notes('contested.json')), 'contested.json');
	await eventually(() => page.evaluate(() => window.demo.sync.recordState('notes', 'contested')).then(s => s === 'synced'), 'synced');
	await page.evaluate(() => {
		window.conflicts = [];
		window.demo.sync.addEventListener('conflict', ev => window.conflicts.push(ev.detail));
	});
	await context.setOffline(true);
	await page.evaluate(() => window.demo.db.put('notes', { v: 'page' }, 'contested'));
	fs.writeFileSync(notes('contested.json'), '{"v":"mount"}\n');
	await context.setOffline(false);
	await eventually(() => page.evaluate(() => window.demo.db.get('notes', 'contested')).then(v => v.v === 'mount'), 'the mount value in the page');
	assert.deepEqual(readJson(notes('contested.json')), { v: 'mount' });
	const conflicts = await page.evaluate(() => window.conflicts);
	assert.equal(conflicts.length, 1);
	assert.deepEqual(conflicts[0].local.value, { v: 'page' });
	assert.equal(conflicts[0].resolution, 'remote');
	await context.close();
});

const RAW_APP = `<!doctype html><title>raw app</title><body><script type="module">
import { captureIndexedDB, startSync } from '/idbmount.js';
captureIndexedDB({ databases: ['todo-app'] });
window.sync = startSync({ database: 'todo-app', token: TOKEN });
// Below: an app written against the raw IndexedDB API, unmodified.
function openDb() {
	return new Promise((resolve, reject) => {
		const r = indexedDB.open('todo-app', 2);
		r.onupgradeneeded = ev => {
			window.upgrades = (window.upgrades || []).concat([[ev.oldVersion, ev.newVersion]]);
			if (ev.oldVersion < 1) r.result.createObjectStore('todos', { keyPath: 'id', autoIncrement: true });
			if (ev.oldVersion < 2) r.transaction.objectStore('todos').createIndex('done', 'done');
		};
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
}
window.app = {
	async run() {
		const db = await openDb();
		window.appVersion = db.version;
		window.appStores = Array.from(db.objectStoreNames);
		await new Promise(done => {
			const tx = db.transaction('todos', 'readwrite');
			const s = tx.objectStore('todos');
			s.add({ title: 'one', done: false });
			s.add({ title: 'two', done: false });
			s.add({ title: 'three', done: false });
			s.put({ id: 10, title: 'ten', done: false, due: new Date(Date.UTC(2026, 11, 1)) });
			tx.oncomplete = done;
		});
		await new Promise(done => {
			const tx = db.transaction('todos', 'readwrite');
			tx.objectStore('todos').openCursor().onsuccess = ev => {
				const c = ev.target.result;
				if (!c) return;
				if (c.value.title === 'one') c.update({ ...c.value, done: true });
				if (c.value.title === 'two') c.delete();
				c.continue();
			};
			tx.oncomplete = done;
		});
		db.close();
	},
	async get(key) {
		const db = await openDb();
		const v = await new Promise(done => {
			db.transaction('todos').objectStore('todos').get(key).onsuccess = ev => done(ev.target.result);
		});
		db.close();
		return v;
	},
};
</script></body>`;

test('drop-in capture works on a small app written against raw IndexedDB', async () => {
	const context = await browser.newContext();
	const page = await context.newPage();
	page.on('pageerror', err => console.error('page error:', err.stack));
	await page.goto(`${d.url}/healthz`); /* any page of the daemon's origin */
	await page.setContent(RAW_APP.replace('TOKEN', JSON.stringify(token)));
	await page.waitForFunction(() => window.app && window.sync);
	await page.evaluate(() => window.app.run());
	assert.equal(await page.evaluate(() => window.appVersion), 2);
	assert.deepEqual(await page.evaluate(() => window.appStores), ['todos']);
	assert.deepEqual(await page.evaluate(() => window.upgrades), [[0, 2]]);
	const store = (...f) => d.path('alice', 'todo-app', 'todos', ...f);
	await eventually(() => fs.existsSync(store('1.json')) && fs.existsSync(store('3.json')) && fs.existsSync(store('10.json')), 'the app\'s records in the mount');
	await eventually(() => readJson(store('1.json')).done === true, 'the cursor update');
	assert.equal(fs.existsSync(store('2.json')), false, 'the cursor delete');
	assert.deepEqual(readJson(store('10.json')), { id: 10, title: 'ten', done: false, due: { '~d': '2026-12-01T00:00:00.000Z' } });
	// And back: a change on the mount reaches the app's database.
	fs.writeFileSync(store('3.json'), '{"id":3,"title":"three, edited on the mount","done":true}\n');
	await eventually(() => page.evaluate(() => window.app.get(3)).then(v => v && v.done === true), 'the mount edit in the app');
	await context.close();
});

test('the demo page loads, shows records with their sync state, and a screenshot is taken', async () => {
	const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
	d.ctl('put', 'carol/demo/notes', '"from-the-mount"', '{"text":"made with idbmountctl"}');
	const page = await demoPage(context, { as: carolToken });
	await page.evaluate(async () => {
		await window.demo.db.put('notes', { text: 'shown in the demo', tags: ['a', 'b'] }, 'demo-row');
		await window.demo.db.put('notes', { text: 'a second note', due: new Date(Date.UTC(2026, 11, 24)) }, 'shopping');
	});
	const stateOf = key => page.evaluate(key => {
		window.demo.render();
		return document.querySelector(`tr[data-key='${JSON.stringify(key)}'] .state`)?.textContent;
	}, key);
	for (const key of ['demo-row', 'shopping', 'from-the-mount'])
		await eventually(() => stateOf(key).then(s => s === 'synced' || s === 'delivered'), `the demo row ${key} to show synced`);
	await page.waitForFunction(() => document.getElementById('s-outbox').textContent === '0');
	assert.equal(await page.evaluate(() => document.getElementById('s-leader').textContent), 'true');
	assert.equal(await page.evaluate(() => document.getElementById('error').textContent), 'none');
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	const file = path.join(ARTIFACTS, 'demo.png');
	await page.screenshot({ path: file });
	const png = fs.readFileSync(file);
	assert.ok(png.length > 1000 && png.subarray(1, 4).toString() === 'PNG', 'a PNG screenshot');
	await context.close();
});
