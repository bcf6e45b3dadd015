// library_route.mjs - serves another copy of the browser library to a
// benchmark's pages instead of the daemon's own, for A/B runs against the
// same daemon. `lib` is either
//   - a directory: the src/web of another checkout (e.g. `git worktree add
//     /tmp/old COMMIT`, then /tmp/old/src/web): its idbmount.js and the
//     modules under idbmount/ answer /idbmount.js and /idbmount/*.js; or
//   - one file holding a whole library, as the library was up to 3b7a57b
//     (`git show 3b7a57b:src/web/idbmount.js > /tmp/old.js`); the entry of
//     a later library alone would import the daemon's modules.
import fs from 'node:fs';
import path from 'node:path';

/* Routes the library's URLs in `target` (a page or a browser context) to
 * `lib`; does nothing without one. */
export async function routeLibrary(target, lib) {
	if (!lib) return;
	if (!fs.statSync(lib).isDirectory()) {
		const text = fs.readFileSync(lib, 'utf8');
		await target.route('**/idbmount.js', r => r.fulfill({ contentType: 'text/javascript', body: text }));
		return;
	}
	await target.route(/\/idbmount(\/[\w-]+)?\.js(\?.*)?$/, r => {
		const file = path.join(lib, new URL(r.request().url()).pathname);
		if (!fs.existsSync(file)) return r.fulfill({ status: 404, contentType: 'text/plain', body: `${file} does not exist` });
		return r.fulfill({ contentType: 'text/javascript', body: fs.readFileSync(file, 'utf8') });
	});
}
