// Times the asset grid's thumbnails in Chromium for bench/thumbnails.py: from clicking Sign in to
// COUNT thumbnails loaded (complete, with pixels), and a reload of the signed-in app to the same.
// Prints one JSON line: {"signIn": [ms...], "reload": [ms...]}.
//   node webapp_thumbnails.cjs URL TOKEN COUNT RUNS CHROMIUM    (WEBAPP_NODE_MODULES: webapp/node_modules)
const path = require("path");
const { chromium } = require(path.join(process.env.WEBAPP_NODE_MODULES, "playwright-core"));

const [url, token, count, runs, executablePath] = process.argv.slice(2);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
// Large enough for 100 cards on screen at once: lazy images load only near the viewport.
const VIEWPORT = { width: 2560, height: 2880 };
const loaded = (n) => [...document.querySelectorAll("img[data-testid=thumbnail]")]
  .filter((img) => img.complete && img.naturalWidth > 0).length >= n;

(async () => {
  const browser = await chromium.launch({ executablePath, args: ARGS });
  const times = { signIn: [], reload: [] };
  for (let i = 0; i < Number(runs); i++) {
    const context = await browser.newContext({ viewport: VIEWPORT });  // a fresh cache each run
    const page = await context.newPage();
    await page.goto(url + "/");
    await page.evaluate(() => localStorage.setItem("graphlake.assetView", "grid"));  // the user's saved choice
    await page.locator("#token").fill(token);
    let started = Date.now();
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForFunction(loaded, Number(count), { timeout: 60000, polling: "raf" });
    times.signIn.push(Date.now() - started);
    started = Date.now();
    await page.reload();  // the thumbnails' URLs are the same for the hour: from the browser's cache
    await page.waitForFunction(loaded, Number(count), { timeout: 60000, polling: "raf" });
    times.reload.push(Date.now() - started);
    await context.close();
  }
  await browser.close();
  console.log(JSON.stringify(times));
})().catch((error) => { console.error(error.message); process.exit(1); });
