// Times the web app in Chromium for bench/webapp.py: sign-in to the first page of assets shown, and
// a reload of the signed-in app to the same. Prints one JSON line: {"signIn": [ms...], "reload": [ms...]}.
//   node webapp_first_page.cjs URL TOKEN ROWS RUNS CHROMIUM    (WEBAPP_NODE_MODULES: webapp/node_modules)
const path = require("path");
const { chromium } = require(path.join(process.env.WEBAPP_NODE_MODULES, "playwright-core"));

const [url, token, rows, runs, executablePath] = process.argv.slice(2);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const shown = (n) => document.querySelectorAll("[data-testid=asset-row]").length >= n;

(async () => {
  const browser = await chromium.launch({ executablePath, args: ARGS });
  const times = { signIn: [], reload: [] };
  for (let i = 0; i < Number(runs); i++) {
    const context = await browser.newContext();  // a fresh cache: the app's files load each run
    const page = await context.newPage();
    await page.goto(url + "/");
    await page.locator("#token").fill(token);
    let started = Date.now();
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForFunction(shown, Number(rows), { timeout: 60000 });
    times.signIn.push(Date.now() - started);
    started = Date.now();
    await page.reload();  // the token is kept for the tab: straight to the list, files from cache
    await page.waitForFunction(shown, Number(rows), { timeout: 60000 });
    times.reload.push(Date.now() - started);
    await context.close();
  }
  await browser.close();
  console.log(JSON.stringify(times));
})().catch((error) => { console.error(error.message); process.exit(1); });
