// What the browser scripts (webapp_browser.cjs, webapp_scenarios.cjs) share around their steps: the
// browser and its page, a failed step's page text and screenshot to read, and an exit naming the step.
const path = require("path");
const fs = require("fs");
const { chromium } = require(path.join(process.env.WEBAPP_NODE_MODULES, "playwright-core"));

const TIMEOUT = 15000;  // the longest a step waits for what it expects
// Without the background-networking flags Chromium keeps calling Google's services, on a machine
// that may have no route to them.
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Chromium (the OS package at `config.chromium`) and a page of 1280 x 800 in it, whose uncaught errors
 *  go to `progress.errors`. */
async function openPage(config, progress) {
  const browser = await chromium.launch({ executablePath: config.chromium, args: ARGS, timeout: 60000 });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(TIMEOUT);
    const page = await context.newPage();
    page.on("pageerror", (error) => progress.errors.push(String(error)));
    return { browser, page };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/** Run `main`; `progress` is read when it fails: `{ step, errors }`, the step it was at and what the page threw. */
function run(main, progress) {
  main().then(() => process.exit(0), (error) => {
    console.error(`failed at step "${progress.step}": ${error.message}`);
    if (progress.errors.length) console.error(`page errors: ${progress.errors.join("; ")}`);
    process.exit(1);
  });
}

/** While the browser is still open: what the page showed when a step failed, under `artifacts`. */
async function keepFailure(page, artifacts) {
  if (!page || !artifacts) return;
  try {
    await page.screenshot({ path: path.join(artifacts, "failure.png") });
    fs.writeFileSync(path.join(artifacts, "failure.txt"), await page.locator("body").innerText());
    console.error(`page text and screenshot: ${artifacts}`);
  } catch (e) { console.error(`no screenshot: ${e.message}`); }
}

module.exports = { TIMEOUT, openPage, run, keepFailure };
