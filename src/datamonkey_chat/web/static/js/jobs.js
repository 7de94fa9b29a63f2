/* Job cards: live status of analyses started in a conversation, then their results. */

import { api, apiJson } from "./api.js";
import { h, renderMarkdown } from "./dom.js";
import { drawPlot, drawServerPlots, drawVisualizations, plotSpec, setLegendColumns } from "./plots.js";
import { els } from "./state.js";

const POLL_MIN_MS = 1500;
const POLL_MAX_MS = 10000;
const OUR_PLOTS = "datamonkey-chat:"; // metadata.generated_by of the server's own plots

export function addJobCard(shell, jobId, method) {
  if (els.messages.querySelector(`.job-card[data-job-id="${CSS.escape(jobId)}"]`)) return;
  const status = h("span", { class: "status-pill queued", text: "queued" });
  const bar = h("div", { class: "progress-bar" });
  const progress = h("div", { class: "progress" }, bar);
  const detail = h("p", { class: "job-detail", text: "Waiting for the job’s status…" });
  const summary = h("div", { class: "job-summary" });
  const plot = h("div", { class: "job-plot" });
  const visualizations = h("div", { class: "job-plot job-visualizations" });
  const card = h(
    "div",
    { class: "job-card", dataset: { jobId, testid: "job-card" } },
    h("div", { class: "job-head" }, h("span", { class: "method", text: (method || "analysis").toString().toUpperCase() }), h("span", { class: "job-id", text: `job ${jobId}` }), status),
    progress,
    detail,
    summary,
    plot,
    visualizations,
  );
  shell.body.append(card);
  pollJob({ card, status, bar, progress, detail, summary, plot, visualizations, method }, jobId);
}

function progressOf(job) {
  const p = job.progress;
  if (typeof p === "number" && Number.isFinite(p)) return { fraction: p > 1 ? p / 100 : p, text: "" };
  if (typeof p === "string") {
    const m = /(\d+)\s*\/\s*(\d+)/.exec(p);
    return { fraction: m && Number(m[2]) ? Number(m[1]) / Number(m[2]) : null, text: p };
  }
  if (p && typeof p === "object") {
    let fraction = null;
    if (typeof p.fraction === "number") fraction = p.fraction;
    else if (typeof p.percent === "number") fraction = p.percent / 100;
    else if (typeof p.current === "number" && p.total) fraction = p.current / p.total;
    return { fraction, text: p.stage || p.message || p.text || "" };
  }
  return { fraction: null, text: "" };
}

function updateJobCard(view, job) {
  const status = job.status || "queued";
  view.status.textContent = status;
  view.status.className = `status-pill ${status}`;
  view.card.dataset.status = status;
  const { fraction, text } = progressOf(job);
  if (status === "completed") {
    view.progress.hidden = true;
    view.detail.textContent = job.summary ? "" : "Finished.";
    view.detail.hidden = Boolean(job.summary);
    if (job.method && !view.method) view.card.querySelector(".method").textContent = job.method.toUpperCase();
    showJobResult(view, job);
  } else if (status === "error") {
    view.progress.hidden = true;
    view.detail.textContent = job.error_message ? `Failed: ${job.error_message}` : "The job failed.";
    view.detail.classList.add("failed");
  } else {
    view.progress.hidden = false;
    view.progress.classList.toggle("indeterminate", fraction === null);
    if (fraction !== null) view.bar.style.width = `${Math.max(2, Math.min(100, fraction * 100)).toFixed(1)}%`;
    view.detail.textContent = text || (status === "running" ? "Running…" : "Queued…");
  }
}

async function pollJob(view, jobId) {
  let delay = POLL_MIN_MS;
  let seen = false;
  while (view.card.isConnected || !seen) {
    try {
      const job = await apiJson(`/jobs/${encodeURIComponent(jobId)}`);
      seen = true;
      updateJobCard(view, job);
      if (job.status === "completed" || job.status === "error") return;
    } catch (err) {
      if (err.status === 404 || err.status === 403 || err.status === 401) {
        view.progress.hidden = true;
        view.status.textContent = "unknown";
        view.status.className = "status-pill unknown";
        view.detail.textContent = "This server does not report this job’s status (yet). Ask the assistant “is my job done?”.";
        return;
      }
      view.detail.textContent = `Checking the job’s status failed (${err.message}); retrying…`;
    }
    seen = true;
    await new Promise((resolve) => window.setTimeout(resolve, delay));
    delay = Math.min(Math.round(delay * 1.4), POLL_MAX_MS);
  }
}

function showJobResult(view, job) {
  const summary = job.summary && typeof job.summary === "object" ? job.summary : null;
  if (!summary) return;
  if (summary.summary_text) renderMarkdown(view.summary, String(summary.summary_text));
  setLegendColumns(view.plot.clientWidth && view.plot.clientWidth < 480 ? 1 : 3);
  const specs = Array.isArray(summary.plots) ? summary.plots.filter((s) => s && typeof s === "object") : [];
  if (specs.length) {
    drawServerPlots(view.plot, specs); // the method's own plots, built by the server
  } else {
    const spec = plotSpec((job.method || view.method || "").toLowerCase(), summary);
    if (spec) drawPlot(view.plot, spec);
  }
  showDownloads(view, job);
  showVisualizations(view, job.id || job.job_id);
}

/* Charts other clients stored for this job; the server's own plots are drawn above. */
async function showVisualizations(view, jobId) {
  try {
    const body = await apiJson(`/visualizations?job_id=${encodeURIComponent(jobId)}`);
    const theirs = (Array.isArray(body.visualizations) ? body.visualizations : []).filter(
      (v) => v && v.spec && typeof v.spec === "object" && !String(v.metadata?.generated_by || "").startsWith(OUR_PLOTS),
    );
    if (theirs.length) drawVisualizations(view.visualizations, theirs);
  } catch {
    /* an older server without visualizations: the job's own plots are enough */
  }
}

/* Downloads need the session header, so they are fetched and handed over as a blob. */
function showDownloads(view, job) {
  if (view.card.querySelector(".job-downloads")) return;
  const jobId = job.id || job.job_id;
  const link = (file, label) => {
    const a = h("a", { href: "#", class: "download", text: label, dataset: { testid: `download-${file}` } });
    a.addEventListener("click", async (event) => {
      event.preventDefault();
      try {
        const response = await api(`/jobs/${encodeURIComponent(jobId)}/${file}`, { accept: "*/*" });
        const url = URL.createObjectURL(await response.blob());
        const save = h("a", { href: url, download: `${job.method || "job"}-${jobId}-${file}` });
        document.body.append(save);
        save.click();
        save.remove();
        window.setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        a.textContent = `${label} (failed: ${err.message})`;
      }
    });
    return a;
  };
  view.card.append(h("p", { class: "job-downloads" }, "Download: ", link("table.csv", "table (CSV)"), " · ", link("result.json", "HyPhy JSON")));
}
