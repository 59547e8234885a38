// Short scenarios of Graphlake's web app in Chromium (playwright-core), one per run, for the tests of
// tests/test_webapp.py that check one behaviour each (the walk, webapp_browser.cjs, checks the rest).
//   node webapp_scenarios.cjs CONFIG_JSON      (WEBAPP_NODE_MODULES: webapp/node_modules)
// CONFIG: baseUrl, chromium, token, scenario (a name below), artifacts, and what the scenario needs.
// Exits 0 once the scenario passed; else non-zero naming its step, with a screenshot and the page's
// text in CONFIG.artifacts.
const { openPage, run, keepFailure } = require("./browser_script.cjs");

const config = JSON.parse(process.argv[2]);

let page = null;
const progress = { step: "launch", errors: [] };  // read by browser_script.run when a step fails

/** Waits until the page has kept where it is scrolled, and a list's pages past its first, in its history
 *  entry (listMemory.ts: a moment after scrolling stops); a page that keeps nothing fails here. */
async function placeKept() {
  await page.waitForFunction(() => history.state?.scrollY === window.scrollY
    && Object.values(history.state.lists ?? {}).some((cursors) => cursors.length > 1));
}

/** Rows with data-testid `rowId` scrolled past their first page to all `total`, then to their end;
 *  returns how far down the page is. */
async function scrollToAll(rowId, total) {
  const rows = page.getByTestId(rowId);
  await rows.nth(49).waitFor();
  await rows.last().scrollIntoViewIfNeeded();
  await page.waitForFunction(([id, n]) => document.querySelectorAll(`[data-testid=${id}]`).length === n, [rowId, total]);
  await rows.last().scrollIntoViewIfNeeded();
  const scrolled = await page.evaluate(() => window.scrollY);
  if (scrolled < 200) throw new Error(`the list did not scroll (${scrolled} px): this checks nothing`);
  return scrolled;
}

/** Once a list's first page is drawn, how many of its rows (data-testid `rowId`) are shown: its first page
 *  alone (so its next page is offered: the sentinel) or every one of `total`, come back at once. */
async function listShown(rowId, total) {
  await page.waitForFunction(([id, n]) => {
    const rows = document.querySelectorAll(`[data-testid=${id}]`).length;
    return rows >= 50 && (document.querySelector(".sentinel") || rows === n);
  }, [rowId, total]);
  return page.getByTestId(rowId).count();
}

const scenarios = {
  /** A large mask: drawn at once, outlined by a worker while the page goes on painting frames. */
  async largeMask() {
    progress.step = "the image found by its name";
    await page.getByLabel("Name contains").fill(config.imageName);
    const row = page.getByTestId("asset-row").filter({ hasText: config.imageName });
    await page.getByTestId("asset-count").filter({ hasText: /^1 asset$/ }).waitFor();
    progress.step = "its mask is drawn while a worker, given its bytes, traces it";
    // The page's workers, as they are, but each outline they send back held until this releases it:
    // the page is then shown mid-trace for as long as this looks, however fast this machine traces
    // (counting frames painted during a real trace, it passed or failed by the machine's speed).
    await page.evaluate(() => {
      window.posted = [];
      window.held = [];
      window.Worker = class extends window.Worker {
        postMessage(data, ...rest) {
          window.posted.push(Object.prototype.toString.call(data));
          super.postMessage(data, ...rest);
        }
        set onmessage(handler) {
          super.onmessage = (event) => window.held.push(() => handler.call(this, event));
        }
      };
    });
    await row.click();
    const overlay = page.locator("[data-testid=annotation-overlay] g[data-kind=MASK]");
    await overlay.locator("mask image").waitFor({ state: "attached" });
    await page.waitForFunction(() => window.held.length === 1);
    const posted = await page.evaluate(() => window.posted);
    // Its bytes, decoded and read there too: pixels read on the page would have taken its main thread.
    if (JSON.stringify(posted) !== JSON.stringify(["[object Blob]"])) throw new Error(`the worker was sent ${posted}`);
    // The page paints frames meanwhile, the mask drawn and not yet outlined; a page tracing it itself
    // (no worker) is outlined at once, or never drawn unoutlined in a frame.
    await page.evaluate(() => new Promise((resolve) => {
      let frames = 0;
      const tick = () => {
        const mask = document.querySelector("[data-testid=annotation-overlay] g[data-kind=MASK]");
        if (mask?.querySelector("mask image") && !mask.querySelector("path[data-outline]")) frames += 1;
        if (frames < 3) requestAnimationFrame(tick); else resolve();
      };
      requestAnimationFrame(tick);
    }));
    progress.step = "the outline the worker traced is drawn once it comes back";
    await page.evaluate(() => window.held.splice(0).forEach((deliver) => deliver()));
    const outline = overlay.locator("path[data-outline]");
    await outline.waitFor({ timeout: 60000 });
    // Traced whole: the mask's lower half (a gradient from black to white), in its own pixels.
    const box = await outline.evaluate((p) => { const b = p.getBBox(); return [b.x, b.y, b.width, b.height].map(Math.round); });
    const [w, h] = config.size;
    if (box[0] !== 0 || box[2] !== w || Math.abs(box[1] - h / 2) > h / 30 || box[1] + box[3] !== h) {
      throw new Error(`the outline spans ${box}, not the mask's lower half`);
    }
  },

  /** A mask on a bucket that lets no page of this origin read it: drawn from one download, unoutlined. */
  async unreadableMask() {
    const asked = {};  // the store's requests, by kind: the page's fetch (to read it), the <image>'s
    page.on("request", (r) => {
      if (r.url().startsWith(config.storeOrigin)) asked[r.resourceType()] = (asked[r.resourceType()] ?? 0) + 1;
    });
    const once = (when) => {
      if (JSON.stringify(asked) !== JSON.stringify({ fetch: 1, image: 1 })) throw new Error(`${when}, the mask was asked for ${JSON.stringify(asked)}`);
    };
    progress.step = "the mask is drawn from its URL, without an outline";
    const drawn = page.waitForResponse((r) => r.url().startsWith(config.storeOrigin) && r.request().resourceType() === "image" && r.ok());
    await page.goto(`${config.baseUrl}/assets/${encodeURIComponent(config.imageId)}`);
    await drawn;
    const overlay = page.getByTestId("annotation-overlay");
    const image = overlay.locator("g[data-kind=MASK] mask image");
    await image.waitFor({ state: "attached" });
    const href = await image.getAttribute("href");
    if (!href.startsWith(config.storeOrigin)) throw new Error(`the mask is drawn from ${href}`);
    if (await overlay.locator("path[data-outline]").count()) throw new Error("a mask the page cannot read is outlined");
    once("drawn");
    progress.step = "Back to the image draws the mask again, neither tried nor downloaded again";
    await page.getByRole("link", { name: "Collections" }).click();
    await overlay.waitFor({ state: "detached" });
    await page.goBack();
    await image.waitFor({ state: "attached" });  // drawn once the page had tried to read it (if it tries)
    if ((await image.getAttribute("href")) !== href) throw new Error(`Back draws the mask from ${await image.getAttribute("href")}`);
    once("after Back");
    progress.step = "the page's data asked anew (a Verify), the mask is neither tried nor downloaded again";
    const row = page.locator("[data-testid=record-row][data-kind=MASK]");
    const asked_anew = page.waitForResponse((r) => r.url().endsWith("/graphql") && (r.request().postData() ?? "").includes("AssetDetail"));
    await row.getByRole("button", { name: "Verify" }).click();
    await row.filter({ hasText: "✓ verified" }).waitFor();
    await asked_anew;
    await image.waitFor({ state: "attached" });
    if ((await image.getAttribute("href")) !== href) throw new Error(`the mask is drawn from another URL after Verify`);
    once("after Verify");
  },

  /** A mask whose reads meet a network failure: drawn (unoutlined) from its URL meanwhile, and read
   *  again, and outlined, the next time it is drawn once the network is back. */
  async maskAfterNetworkFailure() {
    const isMask = (url) => url.includes("/blobs/") && new URL(url, config.baseUrl).searchParams.get("name") === config.maskName;
    const failing = (url) => isMask(url.toString());
    // The connection drops for the mask's requests alone: the page's fetch and its <image>'s load.
    await page.route(failing, (route) => route.abort("internetdisconnected"));
    // Counted as they reach the page (capture, before the <image>'s own handler), to wait on.
    await page.addInitScript(() => {
      window.imageErrors = 0;
      document.addEventListener("error", (event) => { if (event.target?.tagName === "image") window.imageErrors += 1; }, true);
    });
    progress.step = "the mask's read fails, and so does its <image>";
    await page.goto(`${config.baseUrl}/assets/${encodeURIComponent(config.imageId)}`);
    const overlay = page.getByTestId("annotation-overlay");
    const image = overlay.locator("g[data-kind=MASK] mask image");
    await image.waitFor({ state: "attached" });
    await page.waitForFunction(() => window.imageErrors >= 1);
    if (await overlay.locator("path[data-outline]").count()) throw new Error("a mask never read is outlined");
    progress.step = "the network back, Back to the image reads the mask again and outlines it";
    await page.unroute(failing);
    const read = page.waitForResponse((r) => isMask(r.url()) && r.request().resourceType() === "fetch" && r.ok());
    await page.getByRole("link", { name: "Collections" }).click();
    await overlay.waitFor({ state: "detached" });
    await page.goBack();
    // Kept as a refusal, it would be drawn from its URL without an outline for a minute: the read and
    // outline are waited on for less than that.
    await read;
    await overlay.locator("path[data-outline]").waitFor({ timeout: 30000 });
    if (!(await image.getAttribute("href")).startsWith("blob:")) throw new Error("the mask is not drawn from the bytes read");
  },

  /** A search typed again starts at its first page, and Back shows the pages of the search shown. */
  async searchTypedAgain() {
    progress.step = "collections searched, scrolled past their first page";
    await page.getByRole("link", { name: "Collections" }).click();
    const search = page.getByLabel("Collection name contains");
    const searched = (name) => page.waitForFunction((n) => new URLSearchParams(location.search).get("name") === n, name);
    await search.fill(config.search);
    await searched(config.search);
    await scrollToAll("collection-row", config.rows);
    await placeKept();
    progress.step = "another search, then Back to it from a collection";
    await search.fill(config.narrower);
    await searched(config.narrower);
    const rows = page.getByTestId("collection-row");
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=collection-row]").length === n, config.narrowerRows);
    await rows.first().click();
    await page.getByTestId("collection-name").waitFor();
    await page.goBack();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=collection-row]").length === n, config.narrowerRows);
    progress.step = "the first search typed again starts at its first page";
    await search.fill(config.search);
    await searched(config.search);
    let shown = await listShown("collection-row", config.rows);
    if (shown !== 50) throw new Error(`typed again, the search came back with the ${shown} rows its first showing had loaded`);
    progress.step = "Back from a collection shows the pages of the search shown";
    await rows.first().click();
    await page.getByTestId("collection-name").waitFor();
    await page.goBack();
    shown = await listShown("collection-row", config.rows);
    if (shown !== 50) throw new Error(`Back shows ${shown} rows, not the first page of 50 the search showed`);
  },

  /** An upload cut off keeps its session for its token alone: another token signed in on the same
   *  browser uploads the same file anew (the server shows it the first one's session without URLs),
   *  the first then resumes its own, and a sign-out forgets what was kept. */
  async keptUploadsAreTheirTokens() {
    const name = require("path").basename(config.filePath);
    const kept = (p) => p.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("graphlake.upload:")));
    const created = (p) => {  // the CreateUpload mutations the page sends
      const sent = [];
      p.on("request", (r) => { if ((r.postData() ?? "").includes("mutation CreateUpload")) sent.push(r.url()); });
      return sent;
    };
    const cutOff = (p) => p.route("**/blobs/**", (route) => (route.request().method() === "PUT" ? route.abort("connectionreset") : route.continue()));
    const uploaded = async (p, what) => {
      const row = p.getByTestId("upload-row").filter({ hasText: name }).last();
      await row.getByTestId("upload-status").filter({ hasText: "ACTIVE" }).or(row.getByRole("alert")).first().waitFor();
      const problem = await row.getByRole("alert").count() ? await row.getByRole("alert").innerText() : null;
      if (problem || (await row.getByTestId("upload-status").innerText()) !== "ACTIVE") {
        throw new Error(`${what}: ${problem ?? await row.innerText()}`);
      }
      return decodeURIComponent((await row.getByRole("link").getAttribute("href")).split("/").pop());
    };
    progress.step = "the first token's upload is cut off: its session is kept";
    const mine = created(page);
    await page.getByRole("link", { name: "Upload" }).click();
    await cutOff(page);
    await page.getByTestId("file-input").setInputFiles(config.filePath);
    await page.getByTestId("upload-row").filter({ hasText: name }).getByRole("button", { name: "Retry" }).waitFor();
    await page.unroute("**/blobs/**");
    if ((await kept(page)).length !== 1 || mine.length !== 1) throw new Error(`kept ${await kept(page)} after ${mine.length} createUpload`);

    progress.step = "another token, in another tab of the same browser, uploads the same file anew";
    const other = await page.context().newPage();
    other.on("pageerror", (error) => progress.errors.push(String(error)));
    const theirs = created(other);
    await other.goto(config.baseUrl + "/");
    await other.locator("#token").fill(config.otherToken);
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.getByRole("link", { name: "Upload" }).click();
    await other.getByTestId("file-input").setInputFiles(config.filePath);
    const otherAsset = await uploaded(other, "the other token's upload");
    if (theirs.length !== 1) throw new Error(`the other token sent ${theirs.length} createUpload`);
    await other.close();

    progress.step = "the first token picks the file again: its own session resumes (no new upload)";
    await page.getByTestId("file-input").setInputFiles(config.filePath);
    const myAsset = await uploaded(page, "the first token's upload, resumed");
    if (mine.length !== 1) throw new Error(`the first token started ${mine.length - 1} new upload(s) rather than resume its own`);
    if (myAsset === otherAsset) throw new Error("both tokens' uploads made one asset");
    if ((await kept(page)).length) throw new Error(`still kept once both completed: ${await kept(page)}`);

    progress.step = "an upload cut off again, then sign-out: nothing is kept";
    await cutOff(page);
    await page.getByTestId("file-input").setInputFiles(config.filePath);
    await page.getByTestId("upload-row").filter({ hasText: name }).last().getByRole("button", { name: "Retry" }).waitFor();
    if ((await kept(page)).length !== 1) throw new Error("the upload cut off again was not kept");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#token").waitFor();
    if ((await kept(page)).length) throw new Error(`kept after sign-out: ${await kept(page)}`);
    console.log(`${myAsset} ${otherAsset}`);
  },

  /** A value's download saves only what Graphlake's content route answered: a page answered there
   *  instead (Vite's dev server answered its own index.html to /assets/ID/content) is not saved. */
  async contentOnlyFromGraphlake() {
    const saved = [];
    page.on("download", (d) => saved.push(d.suggestedFilename()));
    const content = "**/assets/*/content";
    progress.step = "a page answered where the content route should be is not saved as the value";
    await page.route(content, (route) => route.fulfill({
      status: 200, contentType: "text/html", body: "<!doctype html><title>Graphlake</title><div id=root></div>" }));
    await page.goto(`${config.baseUrl}/assets/${encodeURIComponent(config.assetId)}`);
    await page.getByTestId("asset-value").waitFor();
    await page.getByTestId("asset-download").click();
    await page.getByRole("alert").filter({ hasText: "content route did not answer" }).waitFor();
    progress.step = "the content route answering, the value is saved";
    await page.unroute(content);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("asset-download").click()]);
    const text = await require("fs").promises.readFile(await download.path(), "utf8");
    if (JSON.stringify(saved) !== JSON.stringify([config.fileName])) throw new Error(`saved ${JSON.stringify(saved)}`);
    if (JSON.parse(text).temperature !== 21.5) throw new Error(`the value saved is ${text}`);
  },

  /** Behind a proxy serving Graphlake under a path (config.baseUrl ends with it): every request the
   *  app and GraphiQL make goes under that path, and each part of the app works there. */
  async underPrefix() {
    const origin = new URL(config.baseUrl).origin;
    const under = `${config.baseUrl}/`;
    const strays = [];  // requests to the proxy outside the path, or for what is not there
    const watch = (p) => {
      p.on("request", (r) => { if (r.url().startsWith(origin) && !r.url().startsWith(under)) strays.push(r.url()); });
      p.on("response", (r) => { if (r.url().startsWith(origin) && r.status() === 404) strays.push(`404 ${r.url()}`); });
    };
    const noStrays = (when) => { if (strays.length) throw new Error(`${when}: ${strays.join(", ")}`); };
    watch(page);
    progress.step = "the app loads again, signed in, from under the path";
    await page.reload();
    await page.getByTestId("asset-count").waitFor();
    noStrays("loading the app");
    progress.step = "an asset opens at its path under the proxy's, and loads there again";
    await page.getByLabel("Name contains").fill(config.assetName);
    await page.getByTestId("asset-row").filter({ hasText: config.assetName }).click();
    await page.getByTestId("asset-value").waitFor();
    const path = new URL(page.url()).pathname;
    if (path !== `${new URL(under).pathname}assets/${encodeURIComponent(config.assetId)}`) throw new Error(`the asset opened at ${path}`);
    await page.reload();
    await page.getByTestId("asset-value").waitFor();
    progress.step = "its value downloads from the content route under the path";
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("asset-download").click()]);
    const value = JSON.parse(await require("fs").promises.readFile(await download.path(), "utf8"));
    if (value.temperature !== 21.5) throw new Error(`the value downloaded is ${JSON.stringify(value)}`);
    progress.step = "a file uploads through the URLs signed under the path";
    await page.getByRole("link", { name: "Upload" }).click();
    await page.getByTestId("file-input").setInputFiles(config.filePath);
    await page.getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor();
    progress.step = "the events stream goes live over a WebSocket under the path";
    await page.getByRole("link", { name: "Events" }).click();
    await page.getByTestId("stream-status").filter({ hasText: "live" }).waitFor();
    noStrays("using the app");
    progress.step = "GraphiQL, from the app's link, loads its files and asks its endpoint under the path";
    const [graphiql] = await Promise.all([page.context().waitForEvent("page"), page.getByRole("link", { name: "GraphiQL" }).click()]);
    watch(graphiql);
    const asked = graphiql.waitForResponse((r) => r.url() === `${config.baseUrl}/graphql` && r.request().method() === "POST");
    await graphiql.locator(".graphiql-container").waitFor();
    await asked;
    if (new URL(graphiql.url()).pathname !== `${new URL(under).pathname}graphql`) throw new Error(`GraphiQL opened at ${graphiql.url()}`);
    await graphiql.close();
    noStrays("GraphiQL");
  },

  /** Back to the utilization page: the window chosen, the groups loaded, where it was scrolled. */
  async utilizationBack() {
    progress.step = "the utilization of the last 7 days, scrolled past its first page of nodes";
    await page.getByRole("link", { name: "Utilization" }).click();
    await page.getByLabel("Window").selectOption({ label: "Last 7 days" });
    await page.waitForFunction(() => location.search === "?window=7d");
    await page.getByTestId("utilization-row").filter({ hasText: "ot2-robot" }).waitFor();
    const scrolled = await scrollToAll("utilization-row", config.rows);
    progress.step = "the utilization page keeps its groups and where it is scrolled in its history entry";
    await placeKept();
    progress.step = "Back from another page returns to the window, the groups loaded, where it was scrolled";
    await page.getByRole("link", { name: "Events" }).click();
    await page.getByTestId("utilization").waitFor({ state: "detached" });
    await page.goBack();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=utilization-row]").length === n, config.rows);
    await page.waitForFunction((y) => Math.abs(window.scrollY - y) < 2, scrolled);
    if ((await page.getByLabel("Window").inputValue()) !== "7d") throw new Error("Back lost the window");
  },
};

async function main() {
  const opened = await openPage(config, progress);
  const browser = opened.browser;
  page = opened.page;
  try {
    progress.step = "sign in";
    await page.goto(config.baseUrl + "/");
    await page.locator("#token").fill(config.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("role").waitFor();
    await page.getByTestId("asset-count").waitFor();  // the app's first page is up: a link opens the scenario's
    await scenarios[config.scenario]();
    if (progress.errors.length) throw new Error(`the page threw: ${progress.errors.join("; ")}`);
  } catch (error) {
    await keepFailure(page, config.artifacts);  // while the browser is still open
    throw error;
  } finally {
    await browser.close();
  }
}

run(main, progress);
