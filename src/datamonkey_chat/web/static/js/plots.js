/* Plots of job results: Vega-Lite specs drawn with vega-embed under the strict CSP. */

import { h, nearBottom, scrollToBottom } from "./dom.js";

const COLORS = { positive: "#d1495b", negative: "#2e86ab", neutral: "#c3cad1" };

function num(value) {
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/* A Vega-Lite spec for a job summary, or null when it has nothing to draw. */
export function plotSpec(method, summary) {
  if (Array.isArray(summary.sites) && summary.sites.length) return sitesSpec(method, summary);
  if (Array.isArray(summary.branches) && summary.branches.length) return branchesSpec(summary);
  return null;
}

let legendColumns = 3; // set per chart from its container's width (narrow: one per row)

export function setLegendColumns(columns) {
  legendColumns = columns;
}

function sitesSpec(method, summary) {
  const bayesian = method === "fubar" || summary.sites.some((s) => s.posterior !== undefined && s.p === undefined);
  const threshold = num(summary.threshold) ?? (bayesian ? 0.9 : 0.1);
  const labels = bayesian
    ? { positive: `Positive (posterior ≥ ${threshold})`, negative: `Negative (posterior ≥ ${threshold})`, neutral: "Not significant" }
    : { positive: `Positive (p ≤ ${threshold})`, negative: `Negative (p ≤ ${threshold})`, neutral: "Not significant" };
  const values = [];
  for (const s of summary.sites) {
    const site = num(s.site);
    const alpha = num(s.alpha);
    const beta = num(s.beta);
    if (site === null) continue;
    const score = bayesian ? num(s.posterior) : num(s.p);
    let cls = "neutral";
    if (bayesian) {
      if (score !== null && score >= threshold) cls = "positive";
      else if (num(s.posterior_negative) !== null && num(s.posterior_negative) >= threshold) cls = "negative";
    } else if (score !== null && score <= threshold) {
      cls = beta !== null && alpha !== null && beta < alpha ? "negative" : "positive";
    }
    values.push({ site, site_end: site + 1, alpha, beta, diff: alpha !== null && beta !== null ? beta - alpha : null, score, cls: labels[cls] });
  }
  if (!values.length) return null;
  const haveRates = values.every((v) => v.diff !== null);
  const scoreTitle = bayesian ? "Posterior P(β > α)" : "p-value";
  const domain = [labels.positive, labels.negative, labels.neutral];
  const range = [COLORS.positive, COLORS.negative, COLORS.neutral];
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    description: `${method.toUpperCase()} per-site results`,
    width: "container",
    height: 170,
    data: { values },
    mark: { type: "bar", tooltip: true },
    encoding: {
      x: {
        field: "site",
        type: "quantitative",
        title: "Codon site",
        scale: { domain: [Math.min(...values.map((v) => v.site)), Math.max(...values.map((v) => v.site_end))], nice: false, zero: false },
        axis: { tickMinStep: 1, format: "d", tickCount: 12 },
      },
      x2: { field: "site_end" },
      y: haveRates
        ? { field: "diff", type: "quantitative", title: "β − α (dN − dS)" }
        : { field: "score", type: "quantitative", title: scoreTitle },
      y2: { datum: 0 },
      color: { field: "cls", type: "nominal", title: null, scale: { domain, range }, legend: { orient: "top", direction: "horizontal", columns: legendColumns } },
      tooltip: [
        { field: "site", type: "quantitative", title: "Site" },
        { field: "alpha", type: "quantitative", title: "α (dS)", format: ".3f" },
        { field: "beta", type: "quantitative", title: "β (dN)", format: ".3f" },
        { field: "score", type: "quantitative", title: scoreTitle, format: ".3g" },
      ],
    },
    config: chartConfig(),
  };
}

function branchesSpec(summary) {
  const threshold = num(summary.threshold) ?? 0.05;
  const values = summary.branches
    .map((b) => {
      const p = num(b.corrected_p) ?? num(b.p);
      return { name: String(b.name), p, uncorrected: num(b.p), cls: p !== null && p <= threshold ? `Selected (corrected p ≤ ${threshold})` : "Not significant" };
    })
    .filter((v) => v.p !== null)
    .sort((a, b) => a.p - b.p)
    .slice(0, 60);
  if (!values.length) return null;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    description: "aBSREL branch tests",
    width: "container",
    autosize: { type: "fit-x", contains: "padding" },
    height: { step: 16 },
    data: { values },
    layer: [
      {
        mark: { type: "bar", tooltip: true },
        encoding: {
          y: { field: "name", type: "nominal", sort: { field: "p" }, title: null },
          x: { field: "p", type: "quantitative", scale: { domain: [0, 1] }, title: "Corrected p-value", axis: { values: [0, 0.05, 0.25, 0.5, 0.75, 1], format: "~g" } },
          color: {
            field: "cls",
            type: "nominal",
            title: null,
            scale: { domain: [`Selected (corrected p ≤ ${threshold})`, "Not significant"], range: [COLORS.positive, COLORS.neutral] },
            legend: { orient: "top", direction: "horizontal", columns: legendColumns },
          },
          tooltip: [
            { field: "name", title: "Branch" },
            { field: "p", type: "quantitative", title: "Corrected p", format: ".3g" },
            { field: "uncorrected", type: "quantitative", title: "Uncorrected p", format: ".3g" },
          ],
        },
      },
      { mark: { type: "rule", strokeDash: [4, 3], color: "#555" }, encoding: { x: { datum: threshold } } },
    ],
    config: chartConfig(),
  };
}

function chartConfig() {
  return {
    font: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
    view: { stroke: null },
    axis: { labelColor: "#4a5560", titleColor: "#2b3440", gridColor: "#eef1f4", domainColor: "#c3cad1", tickColor: "#c3cad1" },
    legend: { labelColor: "#2b3440" },
  };
}

/* The plots a method module built on the server (Vega-Lite), each in a box of its own. */
export function drawServerPlots(container, specs) {
  container.replaceChildren();
  for (const spec of specs) {
    const box = h("div", { class: "job-plot-item", dataset: { testid: "job-plot" } });
    container.append(box);
    drawPlot(box, { ...spec, config: { ...chartConfig(), ...(spec.config || {}) } });
  }
}

/* Visualizations a client stored for the job (upstream's Visualizations API), titled. */
export function drawVisualizations(container, visualizations) {
  container.replaceChildren();
  for (const viz of visualizations) {
    const box = h("div", { class: "job-plot-item" });
    const item = h("div", { class: "job-visualization", dataset: { testid: "job-visualization", vizId: viz.viz_id } }, h("p", { class: "job-visualization-title", text: String(viz.title || "") }), box);
    container.append(item);
    drawPlot(box, { ...viz.spec, config: { ...chartConfig(), ...(viz.spec.config || {}), ...(viz.config || {}) } });
  }
}

export async function drawPlot(container, spec) {
  if (!window.vegaEmbed || !window.vega || !window.vega.expressionInterpreter) {
    container.replaceChildren(h("p", { class: "muted", text: "(Charts are unavailable in this browser.)" }));
    return;
  }
  const stick = nearBottom();
  try {
    await window.vegaEmbed(container, spec, {
      renderer: "svg",
      actions: false,
      defaultStyle: false, // no injected <style>: the CSP allows only our stylesheet
      tooltip: { disableDefaultStyle: true, theme: "custom" },
      ast: true, // CSP-safe: interpret expressions instead of compiling them with eval
      expr: window.vega.expressionInterpreter,
    });
    if (stick) scrollToBottom(true);
  } catch (err) {
    container.replaceChildren(h("p", { class: "muted", text: `(Could not draw the chart: ${err.message})` }));
  }
}
