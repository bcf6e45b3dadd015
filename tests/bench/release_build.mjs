// release_build.mjs - which idbmount a browser benchmark measures: the same
// rule as the Python benchmarks, decided by release_build.py (one place).
// With IDBMOUNT_BIN and IDBMOUNTCTL_BIN set, those binaries are measured as
// they are and their CMAKE_BUILD_TYPE is said; otherwise a Release build is
// made in build-release/ first. Call it before tests/web/daemon.mjs is
// imported: it sets those two variables, which daemon.mjs reads.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/* Returns a sentence saying which build the benchmark measures. */
export function useReleaseBuild() {
	const given = process.env.IDBMOUNT_BIN;
	const args = given ? ['--bin', path.dirname(path.resolve(given))] : [];
	if (given && process.env.IDBMOUNTCTL_BIN &&
	    path.dirname(path.resolve(process.env.IDBMOUNTCTL_BIN)) !== path.dirname(path.resolve(given)))
		throw new Error('IDBMOUNT_BIN and IDBMOUNTCTL_BIN name binaries of two builds');
	const out = execFileSync('python3', [path.join(here, 'release_build.py'), ...args],
		{ encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
	const built = JSON.parse(out);
	process.env.IDBMOUNT_BIN = built.idbmount;
	process.env.IDBMOUNTCTL_BIN = built.idbmountctl;
	return built.where;
}
