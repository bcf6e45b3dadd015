// browser.mjs - Debian's Chromium (playwright-core, from tests/web's
// node_modules) syncing through nginx: the demo page served by some node,
// idbmount.js pushing to and following the events of the node the token
// names. Driven by test_browser.py, one step per line:
//   stdin  {"url", "token", "notes"}      open the page; put b1; wait for
//                                           NOTES/b1.json; then the test
//                                           edits the mount
//   stdout "put-done"
//   stdin  {"await": "m1"}                 wait until the page holds m1
//   stdout "edit-seen"
//   stdin  {"token", "notes"}              setToken (the client moved);
//                                           put b2; wait for NOTES/b2.json
//   stdout "moved-put-done"
// Any failure is printed on stderr with exit status 1.
import fs from 'node:fs';
import readline from 'node:readline';

import { launchChromium } from '../web/chromium.mjs';

async function eventually(what, check, timeoutMs = 60000) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		if (await check()) return;
		if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
		await new Promise(r => setTimeout(r, 50));
	}
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function next() {
	const { value, done } = await lines.next();
	if (done) throw new Error('the test closed stdin');
	return JSON.parse(value);
}

let browser;
try {
	// The test's certificate is self-signed: nginx's TLS is what is
	// tested, not the browser's trust store.
	browser = await launchChromium(['--ignore-certificate-errors']);
	const context = await browser.newContext({ ignoreHTTPSErrors: true });
	const page = await context.newPage();
	page.on('pageerror', err => console.error('page error:', err.stack));

	let step = await next();
	await page.goto(`${step.url}/#token=${step.token}`);
	await page.waitForFunction(() => window.demo && window.demo.sync && window.demo.sync.state.leader);
	await page.evaluate(() => window.demo.db.put('notes', { text: 'from the browser' }, 'b1'));
	await eventually('b1.json on the node\'s mount', () => fs.existsSync(`${step.notes}/b1.json`));
	console.log('put-done');

	step = await next();
	await page.waitForFunction(async key => (await window.demo.db.get('notes', key))?.from === 'mount',
		step.await, { timeout: 60000, polling: 100 });
	console.log('edit-seen');

	step = await next();
	await page.evaluate(token => window.demo.sync.setToken(token), step.token);
	await page.evaluate(() => window.demo.db.put('notes', { text: 'after the move' }, 'b2'));
	await eventually('b2.json on the new node\'s mount', () => fs.existsSync(`${step.notes}/b2.json`));
	console.log('moved-put-done');
	await browser.close();
	process.exit(0);
} catch (err) {
	console.error(err.stack || String(err));
	await browser?.close().catch(() => {});
	process.exit(1);
}
