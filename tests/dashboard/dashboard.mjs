// The dashboard in a real browser (Debian's headless Chromium, driven by playwright-core),
// against a real plasma-server that tests/tests/dashboard.rs started, with experience
// already uploaded. Starts a training job through the API, watches it on the page, and
// checks every view: the job appears, its progress moves, it completes; each plot has as
// many points as its endpoint returns; a token is asked for, an agent token sees no
// controls; the console stays free of errors; nothing overflows at 1366×768 and 390×844.
// Screenshots of each view at both sizes go to $PLASMA_SHOTS. Exits non-zero on failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const URL_ = env("PLASMA_URL");
const ADMIN = env("PLASMA_ADMIN_TOKEN");
const AGENT_TOKEN = env("PLASMA_AGENT_TOKEN");
const AGENT = env("PLASMA_AGENT");
const TASK = env("PLASMA_TASK");
const SHOTS = env("PLASMA_SHOTS");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

const SIZES = [
  { width: 1366, height: 768 },
  { width: 390, height: 844 },
];

async function call(method, path, token, body) {
  const res = await fetch(URL_ + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
const train = () => call("POST", "/train", ADMIN, { agent_id: AGENT, task_name: TASK, num_simulations: 64 });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
const errors = [];
let failed = false;
let page;
try {
  const context = await browser.newContext({ viewport: SIZES[0] });
  page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => { if (!r.url().includes("/ws/")) errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`); });

  const ready = async (view) => {
    await page.waitForSelector(`.view[data-view="${view}"][data-ready="true"]`, { timeout: 30000 });
  };
  const open = async (hash, view) => {
    await page.goto(`${URL_}/ui/${hash}`);
    await ready(view);
  };
  // Every view at both sizes: no horizontal overflow, a screenshot each.
  const shoot = async (name, hash, view) => {
    for (const size of SIZES) {
      await page.setViewportSize(size);
      if (hash !== null) await open(hash, view);
      await page.waitForTimeout(150);
      const overflow = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        width: window.innerWidth,
        wide: [...document.querySelectorAll("main *")]
          .filter((e) => !e.closest(".table-wrap") && e.getBoundingClientRect().right > window.innerWidth + 1)
          .map((e) => `${e.tagName.toLowerCase()}.${e.className}`).slice(0, 5),
      }));
      assert.ok(overflow.scroll <= overflow.width && overflow.wide.length === 0,
        `${name} overflows at ${size.width}×${size.height}: ${JSON.stringify(overflow)}`);
      await page.screenshot({ path: `${SHOTS}/${name}-${size.width}x${size.height}.png`, fullPage: true });
    }
    await page.setViewportSize(SIZES[0]);
  };

  const points = async (chart) => Number(await page.getAttribute(`#${chart}`, "data-points"));
  const finite = (v) => typeof v === "number" && Number.isFinite(v);
  const count = (values, keep = finite) => values.filter(keep).length;
  const positive = (v) => finite(v) && v > 0;
  // The phantom paths of the run on the page: every start's plots against the endpoint.
  const checkPhantom = async (ph) => {
    assert.ok(ph && ph.paths.length > 0, "the run keeps phantom paths");
    assert.equal(await page.locator("table.failures tbody tr").count(), ph.paths.length, "failures listed per path");
    for (let i = 0; i < ph.paths.length; i++) {
      await page.locator(".picker button").nth(i).click();
      await page.waitForSelector(`.charts[data-path="${i}"]`);
      const p = ph.paths[i];
      for (let d = 0; d < ph.obs_dim; d++) {
        const want = count(p.imagined.mean.map((v) => v[d])) +
          (p.real ? count(p.real.obs.map((v) => v[d])) + count(p.real.replayed.mean.map((v) => v[d])) : 0);
        assert.equal(await points(`chart-phantom-obs-${d}`), want, `path ${i} obs ${d}`);
      }
      assert.equal(await points("chart-phantom-reward"), count(p.imagined.reward) + (p.real ? count(p.real.reward) : 0), `path ${i} reward`);
      assert.equal(await points("chart-phantom-uncertainty"),
        count(p.imagined.uncertainty) + (p.real ? count(p.real.replayed.uncertainty) : 0), `path ${i} uncertainty`);
      assert.equal(await points("chart-phantom-alive"), count(p.imagined.alive), `path ${i} alive`);
    }
  };

  // 1. No token: the page asks for one.
  await page.goto(`${URL_}/ui/`);
  await page.waitForSelector("form.login #token");
  await shoot("sign-in", null, null);

  // 2. An agent token sees the read views, and no controls.
  await page.fill("#token", AGENT_TOKEN);
  await page.click("form.login button");
  await ready("overview");
  assert.equal(await page.getAttribute("body", "data-role"), "agent");
  await open("#/jobs", "jobs");
  assert.equal(await page.locator("button", { hasText: "Cancel" }).count(), 0, "an agent token gets no cancel button");
  await page.click("text=Sign out");

  // 3. An admin watches a training job live on the jobs view.
  await page.fill("#token", ADMIN);
  await page.click("form.login button");
  await ready("jobs"); // signing in again stays on the view it left
  assert.equal(await page.getAttribute("body", "data-role"), "admin");
  const { training_id: id } = await train();
  const row = page.locator(`tr[data-job="${id}"]`);
  await row.waitFor({ timeout: 15000 });
  const seen = [];
  const deadline = Date.now() + 240000;
  for (;;) {
    const [status, progress] = [await row.getAttribute("data-status"), Number(await row.getAttribute("data-progress"))];
    if (!seen.length || seen[seen.length - 1].progress !== progress || seen[seen.length - 1].status !== status) seen.push({ status, progress });
    if (status === "complete") break;
    assert.ok(!["failed", "cancelled", "interrupted"].includes(status), `the job ended ${status}`);
    assert.ok(Date.now() < deadline, `the job did not complete: ${JSON.stringify(seen)}`);
    await page.waitForTimeout(25);
  }
  const running = seen.filter((s) => s.status === "running").map((s) => s.progress);
  assert.ok(new Set(running).size >= 2, `progress moved on the page while the job ran: ${JSON.stringify(seen)}`);
  assert.ok(running.every((p, i) => i === 0 || p >= running[i - 1]), `progress never went back: ${JSON.stringify(running)}`);
  assert.ok((await page.locator(`.events li[data-job="${id}"]`).count()) >= 3, "events arrived live");

  // 4. Cancelling from the page reaches the server.
  const { training_id: second } = await train();
  const secondRow = page.locator(`tr[data-job="${second}"]`);
  await secondRow.locator("button", { hasText: "Cancel" }).click({ timeout: 15000 });
  await page.waitForSelector(`tr[data-job="${second}"][data-status="cancelled"]`, { timeout: 60000 });
  const cancelled = await call("GET", `/jobs/${second}`, ADMIN);
  assert.equal(cancelled.status, "cancelled");

  // 5. The training run: every plot has as many points as the endpoint returns.
  const job = await call("GET", `/jobs/${id}`, ADMIN);
  const r = job.result;
  await open(`#/run/${id}`, "run");
  const hist = r.world_model.history;
  assert.ok(hist && hist.length > 0, "the run keeps its fit history");
  assert.equal(await points("chart-fit"), count(hist.flatMap((e) => e.holdout_mse), positive), "chart-fit (log axis)");
  assert.equal(await points("chart-fit-train"), count(hist.map((e) => e.train_loss)), "chart-fit-train");
  const rounds = r.distill.rounds;
  assert.equal(await points("chart-rounds-return"), count(rounds.map((x) => x.imagined_return)), "chart-rounds-return");
  assert.equal(await points("chart-rounds-fit"),
    count(rounds.map((x) => x.loss)) + count(rounds.map((x) => x.accuracy)) + count(rounds.map((x) => x.mean_abs_error)), "chart-rounds-fit");
  assert.equal(await page.locator("table.detectors tbody tr").count(), r.audit.detectors.length, "every detector is listed");
  assert.equal(await page.locator("ul.modes li").count(), r.audit.failures.modes.length, "every failure mode the run predicts is listed");
  await checkPhantom(r.phantom);
  await page.locator(".picker button").first().click();
  await shoot("training-run", null, null);

  // 6. A simulation steered by the planner: the same views of its paths.
  const { simulation_id: sim } = await call("POST", "/simulate", AGENT_TOKEN, { agent_id: AGENT, task_description: TASK, num_trajectories: 8, horizon: 20 });
  let simJob;
  for (const until = Date.now() + 120000; ; await new Promise((f) => setTimeout(f, 200))) {
    simJob = await call("GET", `/jobs/${sim}`, ADMIN);
    if (simJob.status !== "queued" && simJob.status !== "running") break;
    assert.ok(Date.now() < until, "the simulation did not end");
  }
  assert.equal(simJob.status, "complete", JSON.stringify(simJob.error));
  await open(`#/run/${sim}`, "run");
  assert.equal(simJob.result.phantom.steering, "planner");
  await checkPhantom(simJob.result.phantom);
  assert.equal(await page.locator("ul.modes li").count(), simJob.result.audit.failures.modes.length, "every failure mode the simulation predicts is listed");
  await page.locator(".picker button").first().click();
  await shoot("simulation", null, null);

  // 7. A packet, deployed: the packets view says who runs it.
  const packet = await call("POST", "/instruction-packet/compile", ADMIN, { agent_id: AGENT, trained_lora_path: r.trained_lora_path, target_device: "cpu", force: true });
  await call("PUT", `/agents/${AGENT}/deployment`, AGENT_TOKEN, { base: packet.packet_id, adapter: null, since: Date.now() / 1000, change: "install" });
  await open("#/packets", "packets");
  const packetRow = page.locator(`tr[data-packet="${packet.packet_id}"]`);
  assert.match(await packetRow.innerText(), new RegExp(AGENT));
  await shoot("packets", "#/packets", "packets");

  // 8. The overview: experience per agent over time, agents and what they run, the queue.
  await open("#/overview", "overview");
  const listing = await call("GET", `/experience?task=${TASK}`, ADMIN);
  assert.equal(await points(`chart-experience-${TASK}`), listing.chunks.length, "one point per upload");
  assert.match(await page.locator(`tr[data-agent="${AGENT}"]`).innerText(), new RegExp(packet.packet_id.slice(0, 12)));
  await shoot("overview", "#/overview", "overview");
  await shoot("jobs", "#/jobs", "jobs");

  assert.deepEqual(errors, [], "no console errors");
  console.log(`dashboard: ok (progress seen: ${running.map((p) => p.toFixed(2)).join(" → ")}; screenshots in ${SHOTS})`);
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  if (errors.length) console.error(`browser errors:\n${errors.join("\n")}`);
  if (page) console.error(`the page showed:\n${await page.locator("main").innerText().catch(() => "(nothing)")}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
