// Times the asset grid's thumbnails in Chromium for bench/thumbnails.py: from the sign-in form's
// submit to COUNT thumbnails loaded (complete, with pixels), and from a reload's navigation start
// to the same. Timed by the page's own clock (performance.now(), marked by listeners installed
// before the app runs), so neither Playwright's click nor its polling is counted.
// Prints one JSON line: {"signIn": [ms...], "reload": [ms...]}.
//   node webapp_thumbnails.cjs URL TOKEN COUNT RUNS CHROMIUM    (WEBAPP_NODE_MODULES: webapp/node_modules)
const path = require("path");
const { chromium } = require(path.join(process.env.WEBAPP_NODE_MODULES, "playwright-core"));

const [url, token, count, runs, executablePath] = process.argv.slice(2);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
// Large enough for 100 cards on screen at once: lazy images load only near the viewport.
const VIEWPORT = { width: 2560, height: 2880 };
// Runs in each page before the app: marks the submit, and the load event of the COUNT-th thumbnail.
function marks(count) {
  window.__marks = {};
  document.addEventListener("submit", () => { window.__marks.submit = performance.now(); }, true);
  document.addEventListener("load", (event) => {
    if (window.__marks.loaded || event.target?.dataset?.testid !== "thumbnail") return;
    const shown = [...document.querySelectorAll("img[data-testid=thumbnail]")]
      .filter((img) => img.complete && img.naturalWidth > 0).length;
    if (shown >= count) window.__marks.loaded = performance.now();
  }, true);  // load events do not bubble: caught on the way down
}
const loaded = () => window.__marks.loaded !== undefined;

(async () => {
  const browser = await chromium.launch({ executablePath, args: ARGS });
  const times = { signIn: [], reload: [] };
  for (let i = 0; i < Number(runs); i++) {
    const context = await browser.newContext({ viewport: VIEWPORT });  // a fresh cache each run
    await context.addInitScript(marks, Number(count));
    const page = await context.newPage();
    await page.goto(url + "/");
    await page.evaluate(() => localStorage.setItem("graphlake.assetView", "grid"));  // the user's saved choice
    await page.locator("#token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForFunction(loaded, null, { timeout: 60000 });
    times.signIn.push(await page.evaluate(() => window.__marks.loaded - window.__marks.submit));
    await page.reload();  // the thumbnails' URLs are the same for the hour: from the browser's cache
    await page.waitForFunction(loaded, null, { timeout: 60000 });
    times.reload.push(await page.evaluate(() => window.__marks.loaded));  // from the navigation's start
    await context.close();
  }
  await browser.close();
  console.log(JSON.stringify(times));
})().catch((error) => { console.error(error.message); process.exit(1); });
