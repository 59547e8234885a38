// What the browser scripts (webapp_browser.cjs, webapp_scenarios.cjs) share around their steps: a
// failed step leaves the page's text and a screenshot to read, and the process exits naming the step.
const path = require("path");
const fs = require("fs");

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

module.exports = { run, keepFailure };
