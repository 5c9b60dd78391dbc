// Drives the ztp-runtime web page in headless Chromium while devices report, and
// checks what a person would see. Started by runtime/tests/web_browser.rs, which runs
// the server, did the first DHCP exchange, and answers "NEED <what>" lines on stdout
// with a line on stdin once done (things only it can do: DHCP, breaking a reload).
//
// Environment: ZTP_BASE (http://127.0.0.1:PORT), ZTP_TOKEN (admin token), ZTP_SHOTS
// (directory for screenshots), CHROMIUM (the browser binary).
import { chromium } from "playwright-core";
import http from "node:http";
import readline from "node:readline";

const base = process.env.ZTP_BASE;
const token = process.env.ZTP_TOKEN;
const shots = process.env.ZTP_SHOTS;
const T = 15000; // every wait is bounded

let checks = 0;
function ok(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
  checks++;
  console.log("ok " + what);
}

const lines = readline.createInterface({ input: process.stdin });
const replies = lines[Symbol.asyncIterator]();
async function need(what) {
  console.log("NEED " + what);
  const r = await replies.next();
  if (r.done || r.value.trim() !== "done") throw new Error(`harness did not do ${what}: ${r.value}`);
}

// A request from a device's own address (the API accepts reports only from there).
function request(method, path, { from, body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method, localAddress: from,
        headers: { ...headers, ...(data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {}) } },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, text }));
      },
    );
    req.setTimeout(T, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

async function report(ip, task, log) {
  const r = await request("POST", "/api/ztp/device/log", {
    from: ip, body: { ip, system_id: "SN-" + ip.split(".").pop(), platform: "eos", task, log },
  });
  if (r.status !== 200) throw new Error(`report from ${ip}: ${r.status} ${r.text}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // playwright gives every launch a fresh temporary profile (--user-data-dir) itself.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 60000,
});
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The wrong admin token below is refused with a 403 that the console reports too.
  let expect403 = false;
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expect403 && m.text().includes("status of 403")) { expect403 = false; return; }
    errors.push(m.text());
  });
  // Any request leaving this server would fail on the management network.
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  await page.goto(base + "/");
  await page.locator('#conn[data-state="live"]').waitFor();
  ok(true, "the event stream connects");
  const row = (ip) => page.locator(`#devices tbody tr[data-ip="${ip}"]`);
  const cellText = (ip, cls) => row(ip).locator("td." + cls).innerText();

  // spine1 got its DHCP lease before the page opened: a row with name and MAC.
  await row("127.0.0.11").waitFor();
  ok((await cellText("127.0.0.11", "name")) === "spine1", "the leased device shows its name");
  ok((await cellText("127.0.0.11", "mac")) === "52:54:00:99:00:11", "and its MAC");
  ok((await cellText("127.0.0.11", "status")) === "Unknown", "and status Unknown before any report");
  ok((await page.locator("#generation").innerText()).length === 16, "the services table shows the generation");
  ok((await page.locator('#services tbody tr[data-name="http"] .badge').innerText()) === "up", "http is up");
  ok((await page.locator("#refused").innerText()) === "none", "no refused reload yet");

  // A second device leases while the page is open: its row appears without a reload.
  await need("dhcp spine2");
  await row("127.0.0.12").waitFor();
  ok((await cellText("127.0.0.12", "name")) === "spine2", "a new lease appears live");

  // Reports move spine1 along.
  await report("127.0.0.11", "Checking version", "running 4.29.0F, want 4.30.1F");
  await page.waitForFunction(() => document.querySelector('#devices tr[data-ip="127.0.0.11"]')?.dataset.status === "in_progress");
  ok((await cellText("127.0.0.11", "status")) === "In progress", "a report turns it In progress");
  ok((await cellText("127.0.0.11", "event")).includes("running 4.29.0F"), "its latest event shows");
  ok((await cellText("127.0.0.11", "prog")).includes("Checking version"), "the progress cell shows the step");

  // The log view: what happened so far, then a new line arrives while it is open.
  await row("127.0.0.11").locator("td.ip a").click();
  await page.locator("#logdlg[open]").waitFor();
  await page.locator("#log li .kind", { hasText: "dhcp" }).first().waitFor();
  ok((await page.locator("#log li").count()) >= 2, "the log shows the DHCP exchange and the report");
  await report("127.0.0.11", "Downloading image", "EOS-4.30.1F.swi");
  await page.locator("#log li .text", { hasText: "Downloading image: EOS-4.30.1F.swi" }).waitFor();
  ok(true, "a new log line appears in the open log view");
  await page.screenshot({ path: `${shots}/log-1280-light.png` });
  await page.locator("#log-close").click();
  await page.locator("#logdlg[open]").waitFor({ state: "detached" });

  // A download in flight: read a little of the image, then stall.
  let res;
  const stalled = new Promise((resolve, reject) => {
    const req = http.get({ host: new URL(base).hostname, port: new URL(base).port, path: "/images/lab.bin",
      localAddress: "127.0.0.11" }, (r) => { res = r; r.once("data", () => { r.pause(); resolve(); }); });
    req.on("error", reject);
  });
  await stalled;
  const dl = row("127.0.0.11").locator("td.prog .dl");
  await dl.waitFor();
  const dlText = await dl.innerText();
  ok(/^HTTP \/images\/lab\.bin: \d+% · [\d.]+ \w+ of 32\.0 MiB/.test(dlText), `the download shows bytes of total: ${dlText}`);
  ok(/ETA (–|\d+:\d\d)/.test(dlText), "and an ETA");
  // Progress ticks refresh the progress cell only: the buttons a person is about to
  // click stay the same elements.
  const button = await row("127.0.0.11").locator("button.delete").elementHandle();
  await page.waitForTimeout(2500);
  ok(await button.evaluate((b) => b.isConnected), "progress updates leave the row's buttons in place");
  await page.screenshot({ path: `${shots}/progress-1280-light.png`, fullPage: true });
  res.destroy();
  await dl.waitFor({ state: "detached" });
  ok(true, "the progress goes away when the download ends");

  // Done and failed.
  const sent = Date.now();
  await report("127.0.0.11", "Device Ready", "agent connected");
  await page.waitForFunction(() => document.querySelector('#devices tr[data-ip="127.0.0.11"]')?.dataset.status === "completed", null, { polling: 5 });
  console.log(`figure: report to page ${Date.now() - sent} ms`);
  ok((await cellText("127.0.0.11", "status")) === "Completed", "Device Ready turns the device Completed");
  await report("127.0.0.12", "ZTP Failed", "image checksum mismatch");
  await page.waitForFunction(() => document.querySelector('#devices tr[data-ip="127.0.0.12"]')?.dataset.status === "failed");
  ok((await cellText("127.0.0.12", "status")) === "Failed", "ZTP Failed turns the device Failed");

  // A bad change to the artifacts is refused: the services table says so, and why.
  await need("refuse reload");
  await page.waitForFunction(() => document.querySelector("#refused")?.textContent !== "none");
  ok((await page.locator("#refused").innerText()).length > 20, "the refused reload shows with its reason");
  await page.screenshot({ path: `${shots}/devices-1280-light.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: `${shots}/devices-1280-dark.png`, fullPage: true });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  ok(bg === "rgb(17, 20, 24)", `dark mode changes the colours (${bg})`);

  // Delete asks for the admin token; a wrong one is refused and the row stays.
  await row("127.0.0.12").locator("button.delete").click();
  await page.locator("#deldlg[open]").waitFor();
  await page.locator("#del-token").fill("not-the-token");
  expect403 = true;
  await page.locator("#del-confirm").click();
  await page.locator("#del-error", { hasText: "Refused" }).waitFor();
  ok((await row("127.0.0.12").count()) === 1, "a wrong admin token deletes nothing");
  await page.locator("#del-token").fill(token);
  await page.locator("#del-confirm").click();
  await row("127.0.0.12").waitFor({ state: "detached" });
  ok(true, "delete with the admin token removes the row");
  const gone = await request("GET", "/api/ztp/device/status/127.0.0.12");
  ok(gone.status === 404, "and the device is gone from the API");

  // The phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "light" });
  await page.screenshot({ path: `${shots}/devices-390-light.png`, fullPage: true });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  ok(wide <= 390, `no sideways scrolling on a phone (page is ${wide} px wide)`);
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: `${shots}/devices-390-dark.png`, fullPage: true });

  ok(errors.length === 0, "no script errors: " + errors.join("; "));
  ok(foreign.length === 0, "no request leaves this server: " + foreign.join(" "));
} catch (e) {
  failed = e;
} finally {
  await browser.close();
  lines.close();
}
if (failed) {
  console.log("FAIL " + failed.message);
  process.exit(1);
}
console.log(`PASS ${checks} checks`);
