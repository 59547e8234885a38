// Drives Graphlake's web app in Chromium (the OS package, by playwright-core) for tests/test_webapp.py.
//   node webapp_browser.cjs CONFIG_JSON      (WEBAPP_NODE_MODULES: webapp/node_modules)
// A conversation over stdio: the script prints one line per milestone ("SIGNED_IN", "EVENTS_LIVE", ...)
// and, where the test must act on the server in between (log an event, add annotations), waits for
// a line on stdin. Each check reads the page's DOM; a failure exits non-zero naming its step, with a
// screenshot and the page's text in CONFIG.artifacts.
const path = require("path");
const fs = require("fs");
const { TIMEOUT, openPage, run, keepFailure } = require("./browser_script.cjs");
const readline = require("readline");

const config = JSON.parse(process.argv[2]);

const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
const queued = [];
lines.on("line", (line) => (waiting.length ? waiting.shift()(line) : queued.push(line)));
const nextLine = () => (queued.length ? Promise.resolve(queued.shift()) : new Promise((resolve) => waiting.push(resolve)));
const say = (line) => process.stdout.write(line + "\n");

let page = null;
const progress = { step: "launch", errors: [] };  // read by browser_script.run when a step fails

async function shot(name) {
  if (config.screenshots) await page.screenshot({ path: path.join(config.screenshots, `${name}.png`) });
}

async function signIn(p, token, role) {
  await p.goto(config.baseUrl + "/");
  await p.locator("#token").fill(token);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByTestId("role").filter({ hasText: role }).waitFor();
}

/** Waits until the page has kept where it is scrolled and a list's pages past its first in its history
 *  entry (listMemory.ts: the position a moment after scrolling stops), else Back must fail. */
async function placeKept() {
  await page.waitForFunction(() => history.state?.scrollY === window.scrollY
    && Object.values(history.state.lists ?? {}).some((cursors) => cursors.length > 1));
}

/** Scrolls a list (rows with data-testid `rowId`) past its first page, opens an item near its end,
 *  goes Back and checks the list came back with those pages, where it was scrolled. */
async function backKeepsPlace(rowId) {
  const rows = page.getByTestId(rowId);
  await rows.nth(49).waitFor();
  await rows.last().scrollIntoViewIfNeeded();
  await rows.nth(50).waitFor();  // the second page
  // To its end: further down than Back could land with the first page alone (the browser's own
  // scroll restoration stops there, and the list then loads the second page with no one at its end).
  await rows.last().scrollIntoViewIfNeeded();
  await placeKept();
  const shown = await rows.count();
  const scrolled = await page.evaluate(() => window.scrollY);
  if (scrolled < 200) throw new Error(`the list did not scroll (${scrolled} px): this checks nothing`);
  await rows.nth(shown - 2).click();
  await rows.first().waitFor({ state: "detached" });
  await page.goBack();
  await page.waitForFunction(([id, n]) => document.querySelectorAll(`[data-testid=${id}]`).length === n, [rowId, shown]);
  await page.waitForFunction((y) => Math.abs(window.scrollY - y) < 2, scrolled);
  await page.evaluate(() => window.scrollTo(0, 0));
}

async function main() {
  const opened = await openPage(config, progress);
  const browser = opened.browser;
  page = opened.page;
  try {

    progress.step = "a wrong token is refused with the server's reason";
    await page.goto(config.baseUrl + "/");
    await shot("sign-in");
    await page.locator("#token").fill("glk_not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "UNAUTHENTICATED" }).waitFor();
    // The token tried is given back, so a typo is mended in place rather than pasted again.
    if (await page.locator("#token").inputValue() !== "glk_not-a-token") throw new Error("the refused token was cleared");

    progress.step = "sign in";
    await signIn(page, config.token, "CONTRIBUTOR");
    say(`SIGNED_IN ${await page.getByTestId("token-name").textContent()}`);
    // The first Tab reaches "Skip to content", which takes the keyboard past the header's links.
    await page.evaluate(() => document.activeElement?.blur());
    await page.keyboard.press("Tab");
    await page.waitForFunction(() => document.activeElement?.textContent === "Skip to content");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement?.matches("main.page"));

    progress.step = "the assets list pages by infinite scroll";
    const rows = page.getByTestId("asset-row");
    await page.getByTestId("asset-count").filter({ hasText: `${config.assetCount} assets` }).waitFor();
    await rows.nth(49).waitFor(); // the count is a query of its own: the page may come after it
    if ((await rows.count()) !== 50) throw new Error(`first page shows ${await rows.count()} rows, not 50`);
    await shot("assets");
    await rows.last().scrollIntoViewIfNeeded();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=asset-row]").length === n, config.assetCount);

    progress.step = "Back from an asset far down the list returns to it, its pages loaded, where it was";
    await backKeepsPlace("asset-row");

    progress.step = "search by name, then labels, finds the asset";
    await page.getByLabel("Name contains").fill(config.assetName);
    await page.getByTestId("asset-count").filter({ hasText: /^1 asset$/ }).waitFor();
    await page.getByLabel("Name contains").fill("");
    await page.getByLabel("Labels").fill(config.assetLabel);
    await page.getByTestId("asset-count").filter({ hasText: /^1 asset$/ }).waitFor();
    await page.getByLabel("Labels").fill("");

    progress.step = "search by metadata and value predicates; a predicate it cannot read says why";
    const count = (n) => page.getByTestId("asset-count").filter({ hasText: new RegExp(`^${n} assets?$`) }).waitFor();
    await page.getByLabel("Metadata").fill("plate = 7; operator ~ ali");
    await count(1);
    await page.getByLabel("Value").fill("temperature > 30");
    await count(0);
    await page.getByLabel("Value").fill("temperature >= 21.5");
    await count(1);
    await page.getByLabel("Metadata").fill("plate == 7; operator ~ ali");  // "==" is equality, as in most languages
    await count(1);
    await page.getByLabel("Metadata").fill("plate => 7");  // a typo, not a search for the text "> 7"
    await page.getByRole("alert").filter({ hasText: 'Metadata: "plate => 7": write one operator' }).waitFor();
    await page.getByLabel("Metadata").fill("plate ≈ 7");
    await page.getByRole("alert").filter({ hasText: 'Metadata: cannot read "plate ≈ 7"' }).waitFor();
    await page.getByLabel("Metadata").fill("");
    await page.getByRole("alert").waitFor({ state: "detached" });

    progress.step = "the search is in the URL: a reload opens the same search";
    await page.getByLabel("Labels").fill(config.assetLabel);
    await page.getByLabel("Kind").selectOption("VALUE");
    // The value predicate typed above is still there: an operator and spaces travel encoded.
    await page.waitForFunction((label) => location.search === `?labels=${label}&kind=VALUE&value=temperature+%3E%3D+21.5`, config.assetLabel);
    await page.reload();
    await count(1);
    if ((await page.getByLabel("Labels").inputValue()) !== config.assetLabel || (await page.getByLabel("Kind").inputValue()) !== "VALUE"
        || (await page.getByLabel("Value").inputValue()) !== "temperature >= 21.5") {
      throw new Error("the search fields did not come back from the URL");
    }
    await rows.filter({ hasText: config.assetName }).focus();
    await page.keyboard.press("Enter");

    progress.step = "the asset page shows the value as a tree";
    await page.getByTestId("asset-name").filter({ hasText: config.assetName }).waitFor();
    // The keyboard's focus moved to the new page's content, not left on the list's vanished link.
    await page.waitForFunction(() => document.activeElement?.matches("main.page"));
    await page.getByTestId("asset-value").filter({ hasText: config.valueText }).waitFor();
    await shot("asset-value");
    // A value downloads as its JSON, as stored, named after the asset (.json added).
    const [valueDownload] = await Promise.all([
      page.waitForEvent("download", { timeout: TIMEOUT }),
      page.getByTestId("asset-download").click(),
    ]);
    if (valueDownload.suggestedFilename() !== `${config.assetName}.json`) {
      throw new Error(`the value downloads as ${valueDownload.suggestedFilename()}`);
    }
    const valuePath = path.join(config.artifacts, "value.json");
    await valueDownload.saveAs(valuePath);
    const downloaded = JSON.parse(fs.readFileSync(valuePath, "utf8"));
    if (downloaded.temperature !== 21.5 || downloaded.unit !== "C") throw new Error(`the value downloaded is ${JSON.stringify(downloaded)}`);
    progress.step = "the asset page lists its first 20 collections, then the rest on Show more";
    const filedIn = page.getByTestId("related-collections");
    await filedIn.getByRole("heading").filter({ hasText: `(${config.filedIn})` }).waitFor();
    if ((await filedIn.locator("li").count()) !== 20) throw new Error(`${await filedIn.locator("li").count()} collections listed, not 20`);
    await filedIn.getByRole("button", { name: `Show more (${config.filedIn - 20} more)` }).click();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=related-collections] li").length === n, config.filedIn);
    if (await filedIn.getByRole("button").count()) throw new Error("Show more is still offered with every collection listed");
    // The keyboard's focus is on the first collection it brought, not lost with the button.
    await page.waitForFunction(() => document.activeElement?.matches("[data-testid=related-collections] li:nth-child(21)"));

    progress.step = "Back to the asset from a collection Show more brought shows it as it was, where it was";
    // The app scrolls a page on Back itself (listMemory.ts): the browser's own restoration, run once
    // the page had its first page of a list only, had stopped short there first.
    if (await page.evaluate(() => history.scrollRestoration) !== "manual") throw new Error("the browser restores the scroll on Back");
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    await placeKept();
    const assetScrolled = await page.evaluate(() => window.scrollY);
    if (assetScrolled < 100) throw new Error(`the asset's page did not scroll (${assetScrolled} px): this checks nothing`);
    await filedIn.locator("li").last().getByRole("link").click();
    await page.getByTestId("collection-name").waitFor();
    const opened = await page.evaluate(() => window.scrollY);
    if (opened !== 0) throw new Error(`a page opened by a link starts ${opened} px down, not at its top`);
    // What each frame shows as it is painted, from Back on: a ResizeObserver's callback runs after the
    // frame's animation callbacks (where the app scrolls), just before the paint; a hidden ticker
    // resized every frame calls it every frame.
    await page.evaluate(() => {
      window.framesShown = [];
      const ticker = document.body.appendChild(document.createElement("div"));
      ticker.style.cssText = "position: absolute; top: 0; height: 1px; visibility: hidden";
      new ResizeObserver(() => {
        window.framesShown.push([window.scrollY, document.querySelectorAll("[data-testid=related-collections] li").length]);
      }).observe(ticker);
      const tick = () => {
        ticker.style.width = `${1 + (window.framesShown.length % 2)}px`;
        if (window.framesShown.length < 300) requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    await page.goBack();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=related-collections] li").length === n, config.filedIn);
    await page.waitForFunction((y) => Math.abs(window.scrollY - y) < 2, assetScrolled);
    if (await filedIn.getByRole("button").count()) throw new Error("Show more is offered again after Back");
    // Drawn whole and in its place from its first frame: not its first page of collections, at the
    // top or where the browser's own restoration stopped short, then moved down.
    const frames = await page.evaluate(() => window.framesShown.filter(([, items]) => items > 0));
    const astray = frames.filter(([y, items]) => items !== config.filedIn || Math.abs(y - assetScrolled) >= 2);
    if (astray.length) throw new Error(`Back showed the asset's page ${JSON.stringify(astray)} (scrollY, collections) before ${assetScrolled}`);
    say("ASSET_SHOWN " + new URL(page.url()).pathname);
    progress.step = "Back from the asset returns to the search it was found by";
    await page.goBack();
    await count(1);
    if ((await page.getByLabel("Labels").inputValue()) !== config.assetLabel) throw new Error("Back lost the search");
    await page.getByLabel("Labels").fill("");
    await page.getByLabel("Kind").selectOption("");
    await page.getByLabel("Value").fill("");
    await page.waitForFunction(() => location.search === "");

    progress.step = "a long series is drawn a hundred points at a time";
    await page.getByLabel("Name contains").fill("filler-00");
    await page.getByTestId("asset-count").filter({ hasText: /^1 asset$/ }).waitFor();
    await rows.filter({ hasText: "filler-00" }).click();
    const more = page.getByRole("button", { name: "Show 1,000 more (of 4,900 not shown)" });
    await more.waitFor();
    if ((await page.locator(".json-leaf").count()) > 150) throw new Error("the whole series was drawn at once");
    await more.click();
    await page.getByRole("button", { name: "Show 1,000 more (of 3,900 not shown)" }).waitFor();
    await page.goBack();
    await page.getByLabel("Name contains").fill("");
    await page.waitForFunction(() => location.search === "");

    progress.step = "the events page streams live events of the type asked for";
    await page.goto(`${config.baseUrl}/events?types=${config.eventType}`);  // a page load of an app path
    await page.getByTestId("stream-status").filter({ hasText: "live" }).waitFor();  // the WebSocket is up
    await page.getByTestId("event-row").filter({ hasText: config.earlierEvent }).waitFor();
    say("EVENTS_LIVE");
    const first = await nextLine();  // the test logs an event of another type, then this one
    const eventRows = page.getByTestId("event-row");
    await eventRows.filter({ hasText: first }).waitFor();
    if (await eventRows.filter({ hasText: "not-for-this-filter" }).count()) throw new Error("an event of another type is shown");
    await shot("events");

    progress.step = "pause holds new events back until resume";
    await page.getByRole("button", { name: "Pause" }).click();
    say("PAUSED");
    const second = await nextLine();
    await page.getByRole("button", { name: "Resume (1 new)" }).waitFor();
    if (await eventRows.filter({ hasText: second }).count()) throw new Error("a paused stream shows a new event");
    await page.getByRole("button", { name: /Resume/ }).click();
    await eventRows.filter({ hasText: second }).waitFor();
    say("PAUSE_OK");

    progress.step = "scrolling down the events loads the older ones, a page at a time";
    await eventRows.last().scrollIntoViewIfNeeded();
    await eventRows.filter({ hasText: `${config.olderEvent} 00` }).waitFor();
    const shown = await eventRows.evaluateAll((rows) => rows.map((r) => r.children[3].textContent));
    const older = Array.from({ length: config.olderEvents }, (_, i) => `${config.olderEvent} ${String(config.olderEvents - 1 - i).padStart(2, "0")}`);
    const expectedEvents = [second, first, config.earlierEvent, ...older];
    if (JSON.stringify(shown) !== JSON.stringify(expectedEvents)) throw new Error(`events shown: ${shown.join(" | ")}`);
    say("OLDER_EVENTS");

    progress.step = "the lake's own events (the audit trail) are apart from what clients logged, one choice away";
    await page.getByLabel("Event types").fill("");
    await page.getByLabel("Logged by").selectOption("lake");
    await page.waitForFunction(() => new URLSearchParams(location.search).get("from") === "lake");
    await eventRows.filter({ hasText: "AUDIT" }).first().waitFor();
    const lakeTypes = new Set(await eventRows.evaluateAll((rows) => rows.map((r) => r.children[2].textContent)));
    if (lakeTypes.has(config.eventType)) throw new Error(`the lake's own events include a client's: ${[...lakeTypes].join(", ")}`);
    // The header's link to /events, with these filters on screen: the filters follow the URL it opens.
    await page.getByRole("navigation").getByRole("link", { name: "Events" }).click();
    await page.waitForFunction(() => document.querySelector("[aria-label='Logged by']")?.value === "");
    await eventRows.filter({ hasText: first }).waitFor();
    const clientTypes = await eventRows.evaluateAll((rows) => rows.map((r) => r.children[2].textContent));
    if (clientTypes.includes("AUDIT")) throw new Error("the events logged by clients include AUDIT");
    if (await page.title() !== "Events · Graphlake") throw new Error(`the window's title is ${await page.title()}`);
    say("ORIGIN_OK");

    progress.step = "utilization: a node's busy share of the last 24 hours";
    await page.getByRole("link", { name: "Utilization" }).click();
    await page.getByTestId("utilization").locator("th", { hasText: "Busy share" }).waitFor();  // the columns are named
    const robot = page.getByTestId("utilization-row").filter({ hasText: "ot2-robot" });
    await robot.filter({ hasText: "30 min busy, 1 session" }).waitFor();
    await robot.filter({ hasText: "2.1%" }).waitFor();  // 30 min of 24 h (the window ends at the next minute)
    await shot("utilization");
    const utilizationRows = page.getByTestId("utilization-row");
    await utilizationRows.nth(49).waitFor();
    if ((await utilizationRows.count()) !== 50) throw new Error(`the first page shows ${await utilizationRows.count()} nodes, not 50`);
    await utilizationRows.last().scrollIntoViewIfNeeded();  // the next page, as the list scrolls
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=utilization-row]").length === n, config.busyNodes + 1);
    // The window and grouping are in the URL: a reload keeps them.
    await page.getByLabel("Window").selectOption({ label: "Last 7 days" });
    await page.waitForFunction(() => location.search === "?window=7d");
    await page.reload();
    if ((await page.getByLabel("Window").inputValue()) !== "7d") throw new Error("the window did not come back from the URL");
    await robot.filter({ hasText: "30 min busy, 1 session" }).waitFor();
    await page.getByLabel("Window").selectOption({ label: "Last 24 hours" });
    await page.waitForFunction(() => location.search === "");

    progress.step = "an upload by the file input turns ACTIVE";
    await page.getByRole("link", { name: "Upload" }).click();
    await page.getByTestId("file-input").setInputFiles(config.imagePath);
    const imageName = path.basename(config.imagePath);
    const imageRow = page.getByTestId("upload-row").filter({ hasText: imageName });
    await imageRow.getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor();
    const imageHref = await imageRow.getByRole("link").getAttribute("href");
    say(`UPLOADED ${decodeURIComponent(imageHref.split("/").pop())}`);

    progress.step = "an upload by drag and drop turns ACTIVE";
    const dropped = await page.evaluateHandle(({ name, text }) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([text], name, { type: "text/plain" }));
      return transfer;
    }, { name: config.droppedName, text: config.droppedText });
    await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer: dropped });
    const droppedRow = page.getByTestId("upload-row").filter({ hasText: config.droppedName });
    await droppedRow.getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor();
    say(`DROPPED ${decodeURIComponent((await droppedRow.getByRole("link").getAttribute("href")).split("/").pop())}`);

    progress.step = "a folder goes into a collection at its files' relative paths";
    // Newer collections fill the picker's 50 (and "none"): the inbox is found by its name.
    await page.waitForFunction(() => document.querySelectorAll("select[aria-label='Into collection'] option").length === 51);
    if (await page.getByLabel("Into collection").locator("option", { hasText: config.inbox }).count()) {
      throw new Error("the inbox is among the newest 50 collections: the search is not tested");
    }
    await page.getByLabel("Find a collection").fill(config.inbox);
    await page.getByLabel("Into collection").locator("option", { hasText: config.inbox }).waitFor({ state: "attached" });
    // Its exact name typed chooses it (typing it and uploading had put the files into no collection).
    await page.waitForFunction((name) => {
      const select = document.querySelector("select[aria-label='Into collection']");
      return select && select.selectedOptions[0]?.textContent === name;
    }, config.inbox);
    await page.getByTestId("folder-input").setInputFiles(config.folderPath);
    for (const file of config.folderFiles) {
      await page.getByTestId("upload-row").filter({ hasText: file }).getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor();
    }

    progress.step = "the same folder again into the same collection: each file is found stored, nothing sent or failed";
    await page.getByTestId("folder-input").setInputFiles(config.folderPath);
    for (const file of config.folderFiles) {
      await page.getByTestId("upload-row").filter({ hasText: file }).filter({ hasText: "done (already stored)" }).waitFor();
    }
    if (await page.getByTestId("upload-row").filter({ hasText: "failed" }).count()) throw new Error("an upload failed");

    progress.step = "the file pickers are reached from the keyboard";
    await page.getByLabel("Into collection").focus();
    await page.keyboard.press("Tab");
    if (!(await page.getByTestId("file-input").evaluate((input) => input === document.activeElement))) {
      throw new Error("Tab from the collection picker does not reach the file input");
    }

    progress.step = "a folder dropped goes into the collection at its files' relative paths";
    // A script's DataTransfer cannot hold a folder; a drag the browser itself delivers can: CDP's drag
    // events with a path give the page a real directory entry, as a drag from the desktop does.
    const dropzone = page.getByTestId("dropzone");
    await dropzone.scrollIntoViewIfNeeded();
    const zone = await dropzone.boundingBox();
    const cdp = await page.context().newCDPSession(page);
    const drag = { items: [], files: [config.droppedFolderPath], dragOperationsMask: 1 };
    for (const type of ["dragEnter", "dragOver", "drop"]) {
      await cdp.send("Input.dispatchDragEvent", { type, x: zone.x + zone.width / 2, y: zone.y + zone.height / 2, data: drag });
    }
    await cdp.detach();
    for (const file of config.droppedFolderFiles) {
      await page.getByTestId("upload-row").filter({ hasText: file }).getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor();
    }
    await shot("upload");
    say("FOLDER_UPLOADED");

    progress.step = "a multipart upload cut off at its third part resumes with the parts still missing";
    await page.getByLabel("Into collection").selectOption({ label: "none" });
    let puts = 0;
    await page.route("**/blobs/**", (route) => {
      if (route.request().method() !== "PUT") return route.continue();
      puts += 1;
      return puts === 3 ? route.abort("connectionreset") : route.continue();
    });
    await page.getByTestId("file-input").setInputFiles(config.bigPath);
    const bigRow = page.getByTestId("upload-row").filter({ hasText: path.basename(config.bigPath) });
    await bigRow.getByRole("button", { name: "Retry" }).waitFor({ timeout: 60000 });
    const sentBefore = puts;
    await bigRow.getByRole("button", { name: "Retry" }).click();
    await bigRow.getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor({ timeout: 60000 });
    await page.unroute("**/blobs/**");
    say(`RESUMED ${sentBefore} ${puts - sentBefore} ${decodeURIComponent((await bigRow.getByRole("link").getAttribute("href")).split("/").pop())}`);

    progress.step = "an upload cut off, then the page reloaded: the same file picked again sends only the missing parts";
    puts = 0;
    await page.route("**/blobs/**", (route) => {
      if (route.request().method() !== "PUT") return route.continue();
      puts += 1;
      return puts === 3 ? route.abort("connectionreset") : route.continue();
    });
    await page.getByTestId("file-input").setInputFiles(config.bigReloadPath);
    const reloadName = path.basename(config.bigReloadPath);
    await page.getByTestId("upload-row").filter({ hasText: reloadName }).getByRole("button", { name: "Retry" })
      .waitFor({ timeout: 60000 });
    const sentBeforeReload = puts;
    await page.unroute("**/blobs/**");
    await page.reload();  // the upload list is gone; the session is still kept (localStorage)
    let putsAfterReload = 0;
    await page.route("**/blobs/**", (route) => {
      if (route.request().method() === "PUT") putsAfterReload += 1;
      return route.continue();
    });
    await page.getByTestId("file-input").setInputFiles(config.bigReloadPath);
    const reloadRow = page.getByTestId("upload-row").filter({ hasText: reloadName });
    await reloadRow.getByTestId("upload-status").filter({ hasText: "ACTIVE" }).waitFor({ timeout: 60000 });
    await page.unroute("**/blobs/**");
    say(`RELOAD_RESUMED ${sentBeforeReload} ${putsAfterReload} ${decodeURIComponent((await reloadRow.getByRole("link").getAttribute("href")).split("/").pop())}`);

    progress.step = "the asset grid shows the uploaded image's thumbnail, made by the server";
    await page.getByRole("link", { name: "Assets" }).click();
    await page.getByRole("button", { name: "Grid" }).click();
    await page.getByLabel("Name contains").fill(imageName);
    await page.getByTestId("asset-count").filter({ hasText: /^1 asset$/ }).waitFor();
    const card = page.getByTestId("asset-row").filter({ hasText: imageName });
    const thumbnail = card.getByTestId("thumbnail");
    await thumbnail.waitFor();
    await page.waitForFunction(() => {
      const img = document.querySelector("[data-testid=thumbnail]");
      return img && img.complete && img.naturalWidth > 0;
    });
    const thumbSize = await thumbnail.evaluate((img) => `${img.naturalWidth} ${img.naturalHeight}`);
    await page.getByLabel("Name contains").fill(config.droppedName);  // a text: a card without an image
    await page.getByTestId("asset-row").filter({ hasText: config.droppedName }).locator(".no-thumb").waitFor();
    if (await page.getByTestId("thumbnail").count()) throw new Error("a text asset's card shows a thumbnail");
    await page.getByLabel("Name contains").fill("");
    await page.getByRole("button", { name: "List" }).click();
    say(`THUMBNAIL ${thumbSize}`);

    progress.step = "a mask the page cannot read (an S3 bucket without CORS for the app) is drawn from its URL, not outlined";
    await nextLine();  // the test has added annotations to the uploaded image
    // The mask's own downloads (the image's have another name).
    const isMask = (url) => url.includes("/blobs/") && new URL(url, config.baseUrl).searchParams.get("name") === config.maskName;
    const maskUrl = (url) => isMask(url.href);
    const unread = (route) => (route.request().resourceType() === "fetch" ? route.abort("accessdenied") : route.continue());
    await page.route(maskUrl, unread);
    const drawnAnyway = page.waitForResponse((r) => isMask(r.url()) && r.request().resourceType() === "image" && r.ok());
    await page.goto(config.baseUrl + imageHref);
    await drawnAnyway;
    const maskImage = page.locator("[data-testid=annotation-overlay] g[data-kind=MASK] mask image");
    if (!isMask(await maskImage.getAttribute("href"))) throw new Error(`an unreadable mask is drawn from ${await maskImage.getAttribute("href")}`);
    if (await page.locator("g[data-kind=MASK] path[data-outline]").count()) throw new Error("an unreadable mask is outlined");
    await page.unroute(maskUrl, unread);

    progress.step = "the image's annotations are drawn over it";
    await page.reload();
    // Its file downloads through a URL signed at the click (one signed as the page loaded would expire).
    const [imageDownload] = await Promise.all([
      page.waitForEvent("download", { timeout: TIMEOUT }),
      page.getByTestId("asset-download").click(),
    ]);
    if (imageDownload.suggestedFilename() !== imageName) {
      throw new Error(`the image downloads as ${imageDownload.suggestedFilename()}, not ${imageName}`);
    }
    const overlay = page.getByTestId("annotation-overlay");
    await overlay.locator("rect[data-kind=BBOX][data-label=scratch]").waitFor();
    await overlay.locator("polygon[data-kind=POLYGON][data-label=dent]").waitFor();
    // The model's set: every other kind (keypoints that are not visible are not drawn).
    await overlay.locator("rect[data-kind=ROTATED_BBOX]").waitFor();
    if (!(await overlay.locator("rect[data-kind=ROTATED_BBOX]").getAttribute("transform")).startsWith("rotate(30 "))
      throw new Error("the rotated box is not rotated");
    await overlay.locator("polyline[data-kind=POLYLINE]").waitFor();
    if ((await overlay.locator("g[data-kind=KEYPOINTS] circle").count()) !== 2) throw new Error("not 2 visible keypoints");
    const edges = overlay.locator("g[data-kind=KEYPOINTS] line[data-skeleton]");
    if ((await edges.count()) !== 1) throw new Error(`${await edges.count()} skeleton edges, not 1 (tip to base)`);
    const edge = await edges.evaluate((l) => ["x1", "y1", "x2", "y2"].map((a) => l.getAttribute(a)).join(" "));
    if (edge !== "250 60 270 150") throw new Error(`the skeleton edge runs ${edge}, not tip to base`);
    await overlay.locator("g[data-kind=MASK] mask image").waitFor({ state: "attached" });
    await page.getByTestId("record-row").filter({ hasText: "0.91" }).filter({ hasText: "MODEL detector" }).waitFor();
    const natural = await page.locator(".overlay img").evaluate((img) => [img.naturalWidth, img.naturalHeight]);
    const viewBox = await overlay.getAttribute("viewBox");
    if (viewBox !== `0 0 ${natural[0]} ${natural[1]}`) throw new Error(`overlay viewBox ${viewBox}, image ${natural}`);
    const truthSwitch = page.getByRole("checkbox", { name: /^labels/ });
    await truthSwitch.uncheck();  // hide the ground truth: its shapes go, the predictions stay
    await overlay.locator("[data-purpose=GROUND_TRUTH]").first().waitFor({ state: "detached" });
    await overlay.locator("rect[data-kind=ROTATED_BBOX]").waitFor();
    say(`OVERLAY_OK ${viewBox}`);

    progress.step = "a person's records are drawn solid, a model's dashed with their scores, whatever their set's purpose, as the legend says";
    await truthSwitch.check();
    const truthBox = overlay.locator("rect[data-kind=BBOX][data-purpose=GROUND_TRUTH]");
    const predicted = overlay.locator("rect[data-kind=ROTATED_BBOX][data-purpose=PREDICTION]");
    const corrected = overlay.locator("rect[data-kind=BBOX][data-purpose=PREDICTION]");  // a person's, in the model's set
    await truthBox.waitFor();
    if (await truthBox.getAttribute("stroke-dasharray")) throw new Error("the ground truth's box is dashed");
    if (!(await predicted.getAttribute("stroke-dasharray"))) throw new Error("the prediction's box is not dashed");
    if (await corrected.getAttribute("stroke-dasharray")) throw new Error("a person's box in a set of predictions is dashed");
    // The purpose still shows, as text beside the set's switch.
    await page.locator(".sets label").filter({ hasText: "detector-v3 (PREDICTION)" }).waitFor();
    if (!(await overlay.locator("polyline[data-kind=POLYLINE]").getAttribute("stroke-dasharray"))) throw new Error("a prediction's line is not dashed");
    // A label the schema gives a colour is drawn in it (dent: #ff0000), one it does not in the palette's.
    await overlay.locator('polygon[data-kind=POLYGON][data-purpose=GROUND_TRUTH][stroke="#ff0000"]').first().waitFor();
    if ((await truthBox.getAttribute("stroke")) === "#ff0000") throw new Error("scratch, which the schema gives no colour, is drawn in dent's");
    // Each prediction's score beside it; nothing beside ground truth that has none and is not verified.
    const captions = await overlay.locator("text[data-caption]").allTextContents();
    if (JSON.stringify(captions.sort()) !== JSON.stringify(["0.55", "0.70", "0.91"])) throw new Error(`captions ${captions}`);
    const legend = page.getByTestId("legend");
    await legend.locator("li[data-source=HUMAN]").filter({ hasText: "by a person" }).waitFor();
    await legend.locator("li[data-source=MODEL]").filter({ hasText: "by a model" }).waitFor();
    if (await legend.locator("li[data-source=HUMAN] line").getAttribute("stroke-dasharray")) throw new Error("the legend's person is dashed");
    if (!(await legend.locator("li[data-source=MODEL] line").getAttribute("stroke-dasharray"))) throw new Error("the legend's model is solid");

    progress.step = "a mask is outlined in its label's colour, dashed as a model's";
    // The mask is the image itself, a gradient from black (top) to white: the half that shows is the lower one.
    const outline = overlay.locator("g[data-kind=MASK] path[data-outline]");
    await outline.waitFor();
    if ((await outline.getAttribute("stroke")) !== "#ff0000") throw new Error(`the mask's outline is ${await outline.getAttribute("stroke")}, not dent's colour`);
    if (!(await outline.getAttribute("stroke-dasharray"))) throw new Error("a model's mask is outlined solid");
    const box = await outline.evaluate((p) => { const b = p.getBBox(); return [b.x, b.y, b.width, b.height].map(Math.round); });
    if (box[0] !== 0 || box[2] !== 320 || Math.abs(box[1] - 120) > 8 || Math.abs(box[1] + box[3] - 240) > 0) {
      throw new Error(`the mask's outline spans ${box}, not its lower half`);
    }
    // One download draws it and traces it.
    const maskDownloads = () => page.evaluate((name) => performance.getEntriesByType("resource")
      .filter((e) => e.name.includes("/blobs/") && new URL(e.name).searchParams.get("name") === name).length, config.maskName);
    if (await maskDownloads() !== 1) throw new Error(`the mask was downloaded ${await maskDownloads()} times`);

    progress.step = "the polygon a correction replaced is hidden, and shown faded when asked";
    const polygons = overlay.locator("polygon[data-kind=POLYGON]");
    if ((await polygons.count()) !== 1) throw new Error(`${await polygons.count()} polygons drawn, not the correction alone`);
    if (await overlay.locator("[data-superseded]").count()) throw new Error("a superseded record is drawn by default");
    const withSuperseded = page.getByRole("checkbox", { name: /^Show superseded/ });
    await withSuperseded.check();
    await overlay.locator("g[data-superseded] polygon[data-kind=POLYGON]").waitFor();
    if ((await polygons.count()) !== 2) throw new Error(`${await polygons.count()} polygons with the superseded one, not 2`);
    if ((await overlay.locator("g[data-superseded]").getAttribute("opacity")) !== "0.4") throw new Error("the superseded polygon is not faded");
    await legend.filter({ hasText: "superseded" }).waitFor();
    const replaced = page.locator("[data-testid=record-row].superseded");
    await replaced.filter({ hasText: "superseded" }).waitFor();
    if (await replaced.getByRole("button").count()) throw new Error("a superseded record offers Verify");
    await withSuperseded.uncheck();
    await overlay.locator("g[data-superseded]").waitFor({ state: "detached" });

    progress.step = "a CONTRIBUTOR verifies a record from the viewer; a ✓ shows beside its outline";
    const scratch = page.locator("[data-testid=record-row][data-kind=BBOX]").filter({ hasText: "GROUND_TRUTH" });
    const truthCaption = overlay.locator("g:has(> rect[data-kind=BBOX][data-purpose=GROUND_TRUTH]) text[data-caption]");
    if (await truthCaption.count()) throw new Error("an unverified box without a score has a caption");
    await scratch.getByRole("button", { name: "Verify" }).click();
    await scratch.filter({ hasText: "✓ verified" }).waitFor();
    await truthCaption.filter({ hasText: "✓" }).waitFor();
    await legend.filter({ hasText: "✓ verified" }).waitFor();
    await shot("asset-annotations");
    say("VERIFIED");

    progress.step = "an image's records past the first page of 200 come with Show more";
    const recordRows = page.getByTestId("record-row");
    if ((await recordRows.count()) !== 200) throw new Error(`${await recordRows.count()} records listed at first, not a page of 200`);
    await page.getByRole("button", { name: "Show more annotations (7 more)" }).click();
    await recordRows.nth(206).waitFor();
    if ((await recordRows.count()) !== 207) throw new Error(`${await recordRows.count()} records listed after Show more, not 207`);
    if (await page.getByRole("button", { name: /^Show more annotations/ }).count()) throw new Error("Show more stays with all shown");
    await page.getByRole("link", { name: "Collections" }).click();
    await page.getByLabel("Collection name contains").waitFor();
    await page.goBack();  // the records Show more brought are listed and drawn again
    await recordRows.nth(206).waitFor();
    if ((await recordRows.count()) !== 207) throw new Error(`${await recordRows.count()} records listed after Back, not 207`);
    // Drawn again from the bytes already read, though Verify had the page's data (and the mask's URL) asked anew.
    await overlay.locator("g[data-kind=MASK] path[data-outline]").waitFor();
    if (await maskDownloads() !== 1) throw new Error(`the mask was downloaded ${await maskDownloads()} times by Back`);

    progress.step = "a collection lists its items with their paths and splits";
    await page.getByRole("link", { name: "Collections" }).click();
    await page.getByLabel("Collection name contains").fill(config.collection);
    await page.waitForFunction((name) => new URLSearchParams(location.search).get("name") === name, config.collection);
    await page.getByTestId("collection-row").filter({ hasText: config.collection }).click();
    await page.getByTestId("collection-name").filter({ hasText: config.collection }).waitFor();
    const item = page.locator(".item").filter({ hasText: "plates/a.png" });
    await item.filter({ hasText: "TRAIN" }).waitFor();
    await shot("collection");
    await page.goBack();  // to the search the collection was found by
    if ((await page.getByLabel("Collection name contains").inputValue()) !== config.collection) throw new Error("Back lost the search");

    progress.step = "Back from a collection far down the list returns to it, its pages loaded, where it was";
    await page.getByLabel("Collection name contains").fill("");
    await page.waitForFunction(() => location.search === "");
    await backKeepsPlace("collection-row");
    say("COLLECTION_OK");

    progress.step = "the datasets are searched by name, in any case; the search is in the URL";
    await page.getByRole("link", { name: "Datasets" }).click();
    const datasetRows = page.getByTestId("dataset-row");
    await datasetRows.filter({ hasText: config.manyVersions }).waitFor();  // listed before the search

    progress.step = "Back from a dataset far down the list returns to it, its pages loaded, where it was";
    await backKeepsPlace("dataset-row");

    progress.step = "the datasets are searched by name, in any case; the search is in the URL";
    await page.getByLabel("Dataset name contains").fill(config.dataset.toUpperCase());
    await page.waitForFunction((name) => new URLSearchParams(location.search).get("name") === name, config.dataset.toUpperCase());
    await page.getByTestId("dataset-count").filter({ hasText: /^1 dataset$/ }).waitFor();
    await datasetRows.filter({ hasText: config.manyVersions }).waitFor({ state: "detached" });
    await page.reload();  // a link or a reload opens the same search
    await page.getByTestId("dataset-count").filter({ hasText: /^1 dataset$/ }).waitFor();
    if ((await page.getByLabel("Dataset name contains").inputValue()) !== config.dataset.toUpperCase()) throw new Error("a reload lost the search");
    if ((await datasetRows.count()) !== 1) throw new Error(`${await datasetRows.count()} datasets match, not 1`);

    progress.step = "a dataset shows its versions with counts per split";
    await datasetRows.filter({ hasText: config.dataset }).click();
    const version = page.locator("[data-testid=version-row][data-version=v1]");
    await version.filter({ hasText: "UNASSIGNED 3" }).waitFor();
    // The version's own count: the set's two records annotate an image none of its datums holds.
    await version.filter({ hasText: "labels (GROUND_TRUTH, 0)" }).waitFor();
    await page.locator("[data-testid=version-row][data-version=v2]").filter({ hasText: "UNASSIGNED 4" }).waitFor();

    progress.step = "two versions compared: what the newer added and removed";
    await page.getByTestId("diff-added").filter({ hasText: "Added (2)" }).waitFor();
    await page.getByTestId("diff-removed").filter({ hasText: "Removed (1)" }).waitFor();
    await page.getByTestId("diff-changed").filter({ hasText: "Changed (0)" }).waitFor();
    if ((await page.getByTestId("diff-added").locator("li").count()) !== 2) throw new Error("the added datums are not listed");
    await shot("dataset");
    await page.getByLabel("Against").selectOption("v2");  // a version against itself: nothing to compare
    await page.getByText("Pick two different versions.").waitFor();

    progress.step = "a version's content file downloads through a URL signed at the click";
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: TIMEOUT }),
      version.getByTestId("content-download").click(),
    ]);
    const saved = path.join(config.artifacts, "content-v1.jsonl");
    await download.saveAs(saved);
    say(`DATASET_OK ${download.suggestedFilename()} ${saved}`);

    progress.step = "Verify: a version intact, then one whose frozen copy was changed behind its back";
    await version.getByTestId("verify").getByRole("button", { name: "Verify" }).click();
    await version.getByTestId("verify").filter({ hasText: "✓ intact" }).waitFor();
    say("VERIFIED_V1");
    await nextLine();  // the test changes a datum's split in v2's frozen copy
    const v2 = page.locator("[data-testid=version-row][data-version=v2]");
    await v2.getByTestId("verify").getByRole("button", { name: "Verify" }).click();
    await v2.getByTestId("verify").filter({ hasText: "✗" }).waitFor();
    if (await v2.getByTestId("verify").filter({ hasText: "intact" }).count()) throw new Error("a changed version is called intact");
    say("VERSIONS_CHECKED");

    progress.step = "a dataset of many versions lists the newest first and pages back to the oldest";
    await page.getByRole("link", { name: "Datasets" }).click();
    await page.getByTestId("dataset-row").filter({ hasText: config.manyVersions }).click();
    const versionRows = page.getByTestId("version-row");
    await page.locator(`[data-testid=version-row][data-version=v${config.versionCount}]`).waitFor();
    if ((await versionRows.first().getAttribute("data-version")) !== `v${config.versionCount}`) throw new Error("the newest version is not first");
    if ((await versionRows.count()) !== 50) throw new Error(`the first page shows ${await versionRows.count()} versions, not 50`);
    await versionRows.last().scrollIntoViewIfNeeded();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=version-row]").length === n, config.versionCount);
    const listed = await versionRows.evaluateAll((all) => all.map((r) => r.getAttribute("data-version")));
    const expected = Array.from({ length: config.versionCount }, (_, i) => `v${config.versionCount - i}`);
    if (JSON.stringify(listed) !== JSON.stringify(expected)) throw new Error(`versions listed as ${listed.join(" ")}`);
    const options = await page.getByLabel("Against").locator("option").count();
    if (options !== config.versionCount) throw new Error(`${options} versions to compare, not ${config.versionCount}`);
    say("VERSIONS_PAGED");

    progress.step = "Back to a page that remembers nothing (a dataset's versions, asked afresh) opens at its top";
    if (await page.evaluate(() => window.scrollY) < 200) throw new Error("the versions did not scroll: this checks nothing");
    await page.evaluate(() => document.querySelector("nav a[href='/datasets']").click());  // no scroll up to the link first
    await datasetRows.first().waitFor();
    await page.goBack();
    await versionRows.nth(49).waitFor();  // its first page of 50, asked again
    if (await page.evaluate(() => window.scrollY) !== 0) throw new Error(`Back to the dataset opens ${await page.evaluate(() => window.scrollY)} px down`);

    progress.step = "a VIEWER gets a read-only app";
    const viewer = await (await browser.newContext()).newPage();
    await signIn(viewer, config.viewerToken, "VIEWER");
    if (await viewer.getByRole("link", { name: "Upload" }).count()) throw new Error("a VIEWER is offered Upload");
    await viewer.goto(config.baseUrl + "/upload");
    await viewer.getByText("A VIEWER token cannot upload.").waitFor();
    await viewer.goto(config.baseUrl + imageHref);  // the annotations, without Verify
    await viewer.getByTestId("record-row").filter({ hasText: "✓ verified" }).waitFor();
    if (await viewer.getByRole("button", { name: /Verify/ }).count()) throw new Error("a VIEWER is offered Verify");
    say("VIEWER_OK");

    progress.step = "a token revoked while the app is open leads back to sign-in, saying why";
    await viewer.goto(config.baseUrl + "/events");
    await viewer.getByTestId("stream-status").filter({ hasText: "live" }).waitFor();
    say("VIEWER_LIVE");
    await nextLine();  // the test has revoked the viewer's token
    // The server closes the event stream's socket (4401): the app signs out at once, with the reason.
    await viewer.getByRole("alert").filter({ hasText: "UNAUTHENTICATED" }).waitFor();
    await viewer.locator("#token").waitFor();
    if (await viewer.evaluate(() => sessionStorage.getItem("graphlake.token"))) throw new Error("the refused token is still kept");
    say("REVOKED_OK");

    if (progress.errors.length) throw new Error(`the page threw: ${progress.errors.join("; ")}`);
    say("DONE");
  } catch (error) {
    await keepFailure(page, config.artifacts);  // while the browser is still open
    throw error;
  } finally {
    await browser.close();
  }
}

run(main, progress);
