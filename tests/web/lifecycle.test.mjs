// The browser's own limits, in real Chromium (Debian's /usr/bin/chromium
// driven through playwright-core) against a real daemon and its mount:
//   - a full disk: Chromium's quota for the daemon's origin is lowered
//     through the DevTools protocol (Storage.overrideQuotaForOrigin), so
//     Chromium's own IndexedDB refuses writes with QuotaExceededError, as
//     on a full disk;
//   - page lifecycle: a page frozen and resumed (Page.setWebLifecycleState,
//     what Chromium does to background tabs: the page turns hidden, gets
//     "freeze", runs nothing, then gets "resume"), and a page kept in the
//     back/forward cache and restored.
// Chromium is started here and Playwright connects to it with noDefaults:
// Playwright's own launch turns the back/forward cache off, and in its
// contexts it emulates focus on every page, which keeps pages visible, so
// Chromium would never freeze them. The pages of the lifecycle tests live
// in the browser's default context, where noDefaults leaves them alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Daemon, eventually } from './daemon.mjs';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

let d;
let browser;
let chromeProcess;
let profile;
const tokens = {};
before(async () => {
	assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run mount-helpers/install-deps.sh --test`);
	/* A keep-alive comment every second: the daemon notices a stream the
	 * browser closed at its next write, so the count of open streams in
	 * /metrics follows within a second or two. */
	d = new Daemon(['--keepalive', '1']);
	for (const name of ['quota', 'frozen', 'cached']) tokens[name] = d.addClient(name);
	await d.start();
	const served = await (await fetch(d.url + '/idbmount.js')).text();
	assert.equal(served, fs.readFileSync(new URL('../../src/web/idbmount.js', import.meta.url), 'utf8'),
		'/idbmount.js is not src/web/idbmount.js: rebuild (cmake --build) before testing');
	profile = fs.mkdtempSync(path.join(os.tmpdir(), 'idbmount-chromium-'));
	chromeProcess = spawn(CHROMIUM, [...CHROMIUM_ARGS, '--remote-debugging-port=0',
		'--user-data-dir=' + profile, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
	const endpoint = await new Promise((resolve, reject) => {
		let text = '';
		chromeProcess.stderr.on('data', chunk => {
			text += chunk;
			const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
			if (m) resolve(m[1]);
		});
		chromeProcess.on('exit', code => reject(new Error(`chromium exited with ${code}: ${text}`)));
	});
	browser = await chromium.connectOverCDP(endpoint, { noDefaults: true });
});
after(async () => {
	if (chromeProcess) {
		const gone = new Promise(resolve => {
			if (chromeProcess.exitCode !== null || chromeProcess.signalCode !== null) resolve();
			else chromeProcess.on('exit', resolve);
		});
		await Promise.race([browser?.close(), new Promise(resolve => setTimeout(resolve, 10000))]);
		/* Chromium's helper processes (its own process group, started
		 * detached above) may outlive it and still write to the profile. */
		try {
			process.kill(-chromeProcess.pid, 'SIGKILL');
		} catch {
			/* already gone */
		}
		await gone;
	}
	if (profile) fs.rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 250 });
	await d?.cleanup();
});

/* The demo page (window.demo = {db, sync}; database "demo", store
 * "notes") as client `who`, from `origin` (the default context's pages
 * share storage: each test uses an origin of its own), with every error event of its sync kept in
 * window.syncErrors; waits until this tab syncs when `leader`. */
async function demoPage(context, who, { leader = true, origin = d.url, bare = false } = {}) {
	const page = await context.newPage();
	page.on('pageerror', err => console.error('page error:', err.stack));
	if (bare) {
		/* The library alone, without the demo's list that reads the
		 * database on every status event. */
		await page.goto(`${origin}/healthz`);
		await page.evaluate(async token => {
			const m = await import('/idbmount.js');
			const db = await m.openDatabase('demo', { version: 1, stores: [{ name: 'notes' }] });
			window.demo = { db, sync: db.sync({ token }) };
		}, tokens[who]);
	} else {
		await page.goto(`${origin}/#token=${tokens[who]}`);
	}
	await page.waitForFunction(() => window.demo && window.demo.sync);
	await page.evaluate(() => {
		window.syncErrors = [];
		window.demo.sync.addEventListener('error', ev => window.syncErrors.push(ev.detail));
	});
	if (leader) await page.waitForFunction(() => window.demo.sync.state.leader);
	return page;
}

function note(who, key) {
	return d.path(who, 'demo', 'notes', key + '.json');
}

/* In the page: a string of `n` random base64 characters. Chromium
 * compresses large IndexedDB values, so a repeated character would take
 * almost no room; random text takes about its length. */
const RANDOM_TEXT = `n => {
	const bytes = new Uint8Array(Math.ceil(n * 3 / 4));
	for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
	let bin = '';
	for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
	return btoa(bin).slice(0, n);
}`;

async function metric(name) {
	const text = await (await fetch(d.url + '/metrics')).text();
	const line = text.split('\n').find(l => l.startsWith(name + ' '));
	assert.ok(line, `/metrics has ${name}`);
	return Number(line.split(' ')[1]);
}

test('a full disk: a refused app write, acknowledgement and pull are quota events, and nothing written is lost', async () => {
	const context = await browser.newContext();
	try {
		await fullDisk(context);
	} finally {
		await context.close();
	}
});

async function fullDisk(context) {
	/* Chromium's IndexedDB asks the quota once and then counts down the
	 * room it was told of, asking again only when a write needs more: so
	 * the quota is lowered to 2 MB before the origin's first write, the
	 * disk is "filled" with a database of its own (probe, not captured) and
	 * "emptied" again by deleting it. */
	const blank = await context.newPage();
	await blank.goto(`${d.url}/healthz`);
	const cdp = await context.newCDPSession(blank);
	await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(d.url).origin, quotaSize: 2 * 1024 * 1024 });
	const page = await demoPage(context, 'quota');
	const quotaErrors = () => page.evaluate(() => window.syncErrors.filter(e => e.kind === 'quota').map(e => e.message));
	const count = () => page.evaluate(() => window.demo.db.count('notes'));
	const outbox = () => page.evaluate(() => window.demo.sync.outboxLength());
	/* Writes random text to the probe database in pieces from 256 KB down
	 * to 256 bytes until even the smallest is refused. */
	const fillDisk = () => page.evaluate(async src => {
		const text = eval(src);
		const db = await new Promise((resolve, reject) => {
			const open = indexedDB.open('probe', 1);
			open.onupgradeneeded = () => open.result.createObjectStore('p', { autoIncrement: true });
			open.onsuccess = () => resolve(open.result);
			open.onerror = () => reject(open.error);
		});
		for (let size = 262144; size >= 256; size /= 4) {
			for (;;) {
				const tx = db.transaction(['p'], 'readwrite');
				tx.objectStore('p').put(text(size));
				const outcome = await new Promise(resolve => {
					tx.oncomplete = () => resolve('stored');
					tx.onabort = () => resolve(tx.error ? tx.error.name : 'aborted');
				});
				if (outcome === 'QuotaExceededError') break;
				if (outcome !== 'stored') throw new Error('probe write: ' + outcome);
			}
		}
		db.close();
	}, RANDOM_TEXT);
	const freeDisk = () => page.evaluate(() => new Promise((resolve, reject) => {
		const del = indexedDB.deleteDatabase('probe');
		del.onsuccess = () => resolve();
		del.onerror = () => reject(del.error);
	}));

	await page.evaluate(async () => {
		for (let i = 0; i < 5; i++) await window.demo.db.put('notes', { i }, 'kept' + i);
	});
	await eventually(async () => fs.existsSync(note('quota', 'kept4')) && (await outbox()) === 0, 'the first records synced');

	// 1. An app write there is no room for: its transaction is refused as a
	// whole, the sync says so, what was written before stays.
	const refused = await page.evaluate(src => window.demo.db.put('notes', { pad: eval(src)(3000000) }, 'big').then(() => 'stored', e => e.name), RANDOM_TEXT);
	assert.equal(refused, 'QuotaExceededError');
	await eventually(async () => (await quotaErrors()).some(m => /rolled back as a whole/.test(m)), 'a quota event for the refused write');
	assert.equal(await page.evaluate(() => window.demo.db.get('notes', 'big')), undefined);
	assert.equal(await count(), 5);
	assert.equal(await outbox(), 0, 'nothing half-written waits to be pushed');

	// 2. Writes made offline; back online the server takes them, but the
	// disk is full when their acknowledgement is to be recorded: they stay
	// pending, and once there is room the retried push (same ids) is
	// acknowledged without applying anything twice.
	/* Right after the refused 3 MB, Chromium may still count some of it for
	 * a moment: wait until a small write fits again. */
	await eventually(() => page.evaluate(() => new Promise(resolve => {
		const open = indexedDB.open('probe', 1);
		open.onupgradeneeded = () => open.result.createObjectStore('p', { autoIncrement: true });
		open.onerror = () => resolve(false);
		open.onsuccess = () => {
			const tx = open.result.transaction(['p'], 'readwrite');
			tx.objectStore('p').put('x'.repeat(64));
			tx.oncomplete = () => resolve(true);
			tx.onabort = () => resolve(false);
			open.result.close();
		};
	})), 'room for a small write again after the refused one');
	await context.setOffline(true);
	await page.evaluate(() => window.demo.db.transaction(['notes'], 'readwrite', tx => {
		for (let i = 0; i < 50; i++) tx.store('notes').put({ i, offline: true }, 'off' + i);
	}));
	const since = d.changes().at(-1).seq;
	let before = (await quotaErrors()).length;
	await fillDisk();
	await context.setOffline(false);
	await eventually(async () => (await quotaErrors()).length > before, 'a quota event for the acknowledgement');
	await eventually(() => fs.existsSync(note('quota', 'off49')), 'the server has the offline writes');
	assert.equal(await outbox(), 50, 'no write is dropped before its acknowledgement is recorded');
	await freeDisk();
	await page.evaluate(() => window.demo.sync.wake());
	await eventually(async () => (await outbox()) === 0, 'the acknowledgement recorded once there is room');
	const offline = d.changes(since).filter(c => c.db === 'demo' && String(c.key).startsWith('off'));
	assert.equal(offline.length, 50, 'each offline write was applied once, however often it was pushed');
	assert.equal(await count(), 55);

	// 3. A change made on the server while the disk is full: not stored,
	// the checkpoint stays before it; once there is room it arrives.
	await eventually(() => page.evaluate(() => !window.demo.sync.state.syncing), 'the sync to be idle');
	before = (await quotaErrors()).length;
	await fillDisk();
	/* 80,000 characters: one argument of idbmountctl stays under Linux's
	 * 128 KB limit. */
	d.ctl('put', 'quota/demo/notes', '"frommount"', JSON.stringify({ pad: crypto.randomBytes(60000).toString('base64') }));
	const seq = d.changes().at(-1).seq;
	await eventually(async () => (await quotaErrors()).length > before, 'a quota event for the pulled change');
	assert.equal(await page.evaluate(() => window.demo.db.get('notes', 'frommount')), undefined);
	assert.ok(await page.evaluate(() => window.demo.sync.state.checkpoint) < seq, 'the checkpoint did not pass what was not stored');
	assert.equal(await count(), 55, 'nothing already written is lost');
	await freeDisk();
	await page.evaluate(() => window.demo.sync.wake());
	await eventually(() => page.evaluate(async () => (await window.demo.db.get('notes', 'frommount'))?.pad.length === 80000),
		'the pulled change stored once there is room');
	await eventually(async () => (await page.evaluate(() => window.demo.sync.state.checkpoint)) >= seq, 'the checkpoint past it');
	assert.match((await quotaErrors()).join('\n'), /quota exceeded/);
}

test('a frozen page lets go of the sync lock and its event stream at once; resumed, it syncs again', async () => {
	const context = browser.contexts()[0];
	const pages = [];
	try {
		await frozenAndResumed(context, pages);
	} finally {
		for (const p of pages) await p.close().catch(() => {});
	}
});

async function frozenAndResumed(context, pages) {
	/* The library alone in A: CDP hides and freezes a page in one go,
	 * where Chromium freezes a background tab minutes after hiding it; a
	 * read of the app's own (the demo redraws on every status) caught
	 * unfinished by the freeze would hold up B's writes until Chromium
	 * aborts it after a minute of inactivity. */
	const a = await demoPage(context, 'frozen', { bare: true });
	pages.push(a);
	await a.evaluate(() => {
		window.lifecycle = [];
		for (const type of ['freeze', 'resume']) document.addEventListener(type, () => window.lifecycle.push(type));
	});
	await eventually(async () => (await metric('idbmount_http_event_streams')) === 1, 'page A follows /v1/events');
	// A is frozen in the middle of a cycle: its push is held on the way.
	let heldPush = null;
	await a.route('**/v1/push', route => {
		heldPush = route;
	});
	await a.evaluate(() => window.demo.db.put('notes', 'pushed by A, frozen on the way', 'held'));
	await eventually(() => heldPush, 'A\'s push to be on its way');
	const since = d.changes().at(-1)?.seq ?? 0;
	const cdp = await context.newCDPSession(a);
	await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
	// A runs no script now: its lock and its stream went in its freeze event.
	await eventually(async () => (await metric('idbmount_http_event_streams')) === 0, 'the frozen page\'s event stream to close');
	const b = await demoPage(context, 'frozen'); /* waits until B holds the lock */
	pages.push(b);
	await eventually(() => fs.existsSync(note('frozen', 'held')), 'B pushes what A was pushing');
	await b.evaluate(() => window.demo.db.put('notes', 'from b', 'b1'));
	await eventually(() => fs.existsSync(note('frozen', 'b1')), 'B\'s write reaches the mount while A is frozen');
	await b.close();
	await heldPush.continue().catch(() => {}); /* A's fetch was aborted: nothing may come of it */
	await a.unroute('**/v1/push');
	await cdp.send('Page.setWebLifecycleState', { state: 'active' });
	assert.deepEqual(await a.evaluate(() => window.lifecycle), ['freeze', 'resume']);
	await a.waitForFunction(() => window.demo.sync.state.leader);
	await eventually(async () => (await metric('idbmount_http_event_streams')) === 1, 'the resumed page follows /v1/events again');
	await a.evaluate(() => window.demo.db.put('notes', 'from a', 'a1'));
	await eventually(() => fs.existsSync(note('frozen', 'a1')), 'A\'s write after resuming reaches the mount');
	fs.writeFileSync(note('frozen', 'm1'), '"from the mount"\n');
	await eventually(() => a.evaluate(async () => (await window.demo.db.get('notes', 'm1')) === 'from the mount'),
		'a change on the mount reaches the resumed page');
	assert.deepEqual(await a.evaluate(() => window.syncErrors.filter(e => e.kind !== 'offline')), []);
	assert.equal(d.changes(since).filter(c => c.key === 'held').length, 1, 'the write A and B both pushed was applied once');
	assert.equal(await a.evaluate(() => window.demo.sync.outboxLength()), 0);
}

test('a page kept in the back/forward cache lets go of sync and syncs again when restored', async () => {
	const context = browser.contexts()[0];
	const pages = [];
	try {
		await cachedAndRestored(context, pages);
	} finally {
		for (const p of pages) await p.close().catch(() => {});
	}
});

async function cachedAndRestored(context, pages) {
	/* Another origin than the other tests' (same daemon): its own storage. */
	const origin = d.url.replace('127.0.0.1', 'localhost');
	const page = await demoPage(context, 'cached', { origin });
	pages.push(page);
	const cdp = await context.newCDPSession(page);
	await cdp.send('Page.enable');
	const notCached = [];
	cdp.on('Page.backForwardCacheNotUsed', ev => notCached.push(ev.notRestoredExplanations));
	await eventually(async () => (await metric('idbmount_http_event_streams')) === 1, 'the page follows /v1/events');
	await page.evaluate(() => {
		window.keptInCache = 'this very document';
		addEventListener('pageshow', ev => {
			window.restoredFromCache = ev.persisted;
		});
	});
	/* Left while its first sync round still runs, a page is not kept:
	 * Chromium evicts a cached page when a request of an IndexedDB
	 * transaction that was running at pagehide completes (seen as
	 * "IgnoreEventAndEvict" in about 1 run in 4 that left mid-round, never
	 * in one that left idle). The same goes for the fold of revision runs
	 * a second after a round (seen once leaving right after the round).
	 * What this test is about is a page that is kept, so it leaves once the
	 * round is over and the runs are folded. */
	await page.waitForFunction(() => !window.demo.sync.state.syncing && window.demo.sync.runsWritten === false);
	await page.goto(`${origin}/healthz`);
	await eventually(async () => (await metric('idbmount_http_event_streams')) === 0, 'the cached page\'s event stream to close');
	// While the page sits in the cache another tab takes over.
	const other = await demoPage(context, 'cached', { origin });
	pages.push(other);
	await other.evaluate(() => window.demo.db.put('notes', 'while cached', 'c1'));
	await eventually(() => fs.existsSync(note('cached', 'c1')), 'the other tab syncs while the first page is cached');
	await other.close();
	await page.goBack({ waitUntil: 'commit' });
	await page.waitForFunction(() => window.demo && window.demo.sync);
	assert.deepEqual(notCached, [], 'the page was kept in the back/forward cache');
	assert.deepEqual(await page.evaluate(() => [window.keptInCache, window.restoredFromCache]), ['this very document', true]);
	await page.waitForFunction(() => window.demo.sync.state.leader);
	await page.evaluate(() => window.demo.db.put('notes', 'after restore', 'c2'));
	await eventually(() => fs.existsSync(note('cached', 'c2')), 'a write after the restore reaches the mount');
	fs.writeFileSync(note('cached', 'm2'), '"from the mount"\n');
	await eventually(() => page.evaluate(async () => (await window.demo.db.get('notes', 'm2')) === 'from the mount'),
		'a change on the mount reaches the restored page');
}
