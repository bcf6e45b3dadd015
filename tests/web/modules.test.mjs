// The browser library is ES modules served as they are: the entry
// /idbmount.js and the modules under /idbmount/. An app on another origin
// imports the entry from the daemon (allowed with --allow-origin), so every
// module must come with text/javascript and the CORS header, or the
// browser refuses the whole import. Checked here on the real daemon, in
// Debian's Chromium, with an app page served from an origin of its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';
import { Daemon, eventually } from './daemon.mjs';
import { AppServer } from './appserver.mjs';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/web');

/* Every module of the library on disk, by the URL path the daemon serves
 * it at: /idbmount.js and /idbmount/<name>.js. */
const MODULES = ['/idbmount.js', ...fs.readdirSync(path.join(WEB, 'idbmount')).filter(f => f.endsWith('.js')).sort().map(f => `/idbmount/${f}`)];

function source(urlPath) {
	return fs.readFileSync(path.join(WEB, urlPath), 'utf8');
}

/* The URL paths a module imports (static imports and re-exports). */
function importsOf(urlPath) {
	const statement = /^(?:import\s[^;]*?\sfrom\s*|import\s*|export\s*(?:\*|\{[^}]*\})\s*from\s*)'([^']+)';/gm;
	const specs = [...source(urlPath).matchAll(statement)].map(m => m[1]);
	return specs.map(s => new URL(s, 'http://x' + urlPath).pathname);
}

let d;
let apps;
let token;
let browser;
before(async () => {
	apps = await new AppServer().start();
	d = new Daemon(['--allow-origin', apps.url]);
	token = d.addClient('mods');
	await d.start();
	apps.daemonUrl = d.url;
	browser = await launchChromium();
});
after(async () => {
	await browser?.close();
	await apps?.stop();
	await d?.cleanup();
});

test('the modules import only each other, without a cycle, and the entry names every one', () => {
	assert.ok(MODULES.length > 1, 'the library is split into modules');
	const graph = new Map(MODULES.map(m => [m, importsOf(m)]));
	for (const [m, deps] of graph)
		for (const dep of deps) assert.ok(graph.has(dep), `${m} imports ${dep}, which is not a module of src/web`);
	/* Depth-first: a module met again while still on the path is a cycle. */
	const state = new Map();
	const visit = (m, trail) => {
		if (state.get(m) === 'done') return;
		assert.notEqual(state.get(m), 'open', `import cycle: ${[...trail, m].join(' -> ')}`);
		state.set(m, 'open');
		for (const dep of graph.get(m)) visit(dep, [...trail, m]);
		state.set(m, 'done');
	};
	visit('/idbmount.js', []);
	/* A browser fetches the modules the entry names in one round. */
	assert.deepEqual([...new Set(graph.get('/idbmount.js'))].sort(), MODULES.slice(1), 'the entry imports every module itself');
});

test('the daemon serves every module as it is on disk, as text/javascript with the CORS header', async () => {
	for (const m of MODULES) {
		const res = await fetch(d.url + m, { headers: { Origin: apps.url } });
		assert.equal(res.status, 200, `${m}: status`);
		assert.match(res.headers.get('content-type'), /^text\/javascript\b/, `${m}: content type`);
		assert.equal(res.headers.get('access-control-allow-origin'), apps.url, `${m}: CORS header for the allowed origin`);
		assert.equal(await res.text(), source(m), `${m} is not src/web${m}: rebuild (cmake --build) before testing`);
		/* An origin that is not allowed gets nothing of it. */
		const refused = await fetch(d.url + m, { headers: { Origin: 'http://elsewhere.invalid' } });
		assert.equal(refused.status, 403, `${m}: another origin is refused`);
		await refused.arrayBuffer();
	}
});

test('each module URL imports cross-origin on its own', async () => {
	const context = await browser.newContext();
	for (const m of MODULES) {
		/* A page of its own: nothing of the library in its module map yet. */
		const page = await context.newPage();
		const errors = [];
		page.on('pageerror', err => errors.push(String(err.stack || err)));
		await page.goto(`${apps.url}/blank.html`);
		const outcome = await page.evaluate(url => import(url).then(mod => Object.keys(mod).length, err => String(err)), d.url + m);
		assert.equal(typeof outcome, 'number', `import of ${m} from ${apps.url}: ${outcome}`);
		assert.deepEqual(errors, [], m);
		await page.close();
	}
	await context.close();
});

test('a page importing only /idbmount.js loads every module with no failed request, and syncs', async () => {
	const context = await browser.newContext();
	const page = await context.newPage();
	const errors = [];
	const failed = [];
	const fromDaemon = new Map(); /* path -> {status, cors} */
	page.on('pageerror', err => errors.push(String(err.stack || err)));
	page.on('requestfailed', req => failed.push(`${req.url()}: ${req.failure()?.errorText}`));
	page.on('response', async res => {
		const url = new URL(res.url());
		if (url.origin !== d.url) return;
		if (res.status() >= 400) failed.push(`${res.url()}: ${res.status()}`);
		if (url.pathname.endsWith('.js'))
			fromDaemon.set(url.pathname, { status: res.status(), cors: (await res.allHeaders())['access-control-allow-origin'] });
	});
	await page.goto(`${apps.url}/entry-only.html#token=${token}`);
	await page.waitForFunction(() => window.app && window.sync, null, { timeout: 30000 });
	assert.deepEqual(await page.evaluate(() => Object.keys(window.idbmount).sort()),
		['Backoff', 'Database', 'SSEParser', 'Sync', 'SyncError', 'VERSION_FACTOR', 'captureIndexedDB', 'decodeKey',
			'decodeValue', 'encodeKey', 'encodeValue', 'internals', 'openDatabase', 'requestPersistence', 'startSync', 'storageHealth']);
	/* It works: a write reaches the daemon (its url defaults to where the
	 * library came from) and the mount. */
	await page.evaluate(() => window.app.db.put('notes', { text: 'from another origin' }, 'n1'));
	await eventually(() => page.evaluate(() => window.sync.recordState('notes', 'n1').then(s => s === 'synced')), 'n1 to be synced');
	assert.deepEqual(JSON.parse(fs.readFileSync(d.path('mods', 'entry-only', 'notes', 'n1.json'), 'utf8')), { text: 'from another origin' });
	assert.deepEqual([...fromDaemon.keys()].sort(), [...MODULES].sort(), 'every module, and nothing else, came from the daemon');
	for (const [m, r] of fromDaemon) {
		assert.equal(r.status, 200, `${m}: status`);
		assert.equal(r.cors, apps.url, `${m}: CORS header`);
	}
	assert.deepEqual(failed, [], 'no request failed');
	assert.deepEqual(errors, []);
	await page.evaluate(() => window.sync.stop());
	await context.close();
});
