// chromium.mjs - Debian's Chromium as every browser test and benchmark
// launches it: the binary ($IDBMOUNT_CHROMIUM, else /usr/bin/chromium; no
// browser is downloaded) and the switches that keep a headless run quiet
// and alike from one machine to the next.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.IDBMOUNT_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
	'--disable-component-update', '--disable-sync', '--no-first-run'];

// Launches it through playwright-core with CHROMIUM_ARGS and `extraArgs`;
// a missing binary fails with what installs it.
export function launchChromium(extraArgs = []) {
	checkPresent();
	return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

// The same with a profile kept in directory `dir` (a browser context,
// as playwright-core's launchPersistentContext gives it).
export function launchChromiumProfile(dir, extraArgs = []) {
	checkPresent();
	return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

function checkPresent() {
	if (!fs.existsSync(CHROMIUM))
		throw new Error(`${CHROMIUM} is missing: run mount-helpers/install-deps.sh --test`);
}
