/* Uploads (picker and drop) and the sidebar's dataset list. */

import { apiJson } from "./api.js";
import { refreshConversations } from "./conversations.js";
import { autoresize, h, hideError, icon, scrollToBottom } from "./dom.js";
import { els, state } from "./state.js";

function note(className, ...children) {
  els.welcome.hidden = true;
  const li = h("li", { class: `note ${className}` }, ...children);
  els.messages.append(li);
  scrollToBottom(true);
  return li;
}

function describeProblem(problem) {
  if (typeof problem === "string") return problem;
  if (!problem || typeof problem !== "object") return String(problem);
  const where = [];
  if (problem.sequence) where.push(`sequence ${problem.sequence}`);
  if (problem.position !== undefined && problem.position !== null) where.push(`position ${problem.position}`);
  if (problem.line !== undefined && problem.line !== null) where.push(`line ${problem.line}`);
  const text = problem.message || problem.problem || problem.detail || JSON.stringify(problem);
  return where.length ? `${where.join(", ")}: ${text}` : text;
}

function datasetFacts(dataset) {
  const facts = [];
  const pick = (...keys) => keys.map((k) => dataset[k]).find((v) => v !== undefined && v !== null);
  const sequences = pick("sequences", "num_sequences", "sequence_count", "n_sequences");
  const sites = pick("sites", "num_sites", "length", "n_sites");
  const codons = pick("codons", "num_codons", "n_codons");
  // data_type (nucleotide, protein) before `type`, which is the uploader's own word
  const type = pick("data_type", "alphabet", "type");
  if (sequences !== undefined) facts.push(`${sequences} sequences`);
  if (sites !== undefined) facts.push(`${sites} sites`);
  if (codons !== undefined) facts.push(`${codons} codons`);
  if (typeof type === "string") facts.push(type);
  return facts.join(" · ");
}

export async function upload(file) {
  if (!file) return;
  hideError();
  const pending = note("upload", h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text: `Uploading ${file.name}…` }));
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("meta", JSON.stringify({ name: file.name }));
  try {
    const body = await apiJson("/datasets", { method: "POST", body: form });
    const dataset = (Array.isArray(body?.datasets) ? body.datasets[0] : body) || {}; // upstream's Datasets
    const id = String(dataset.id ?? dataset.dataset_id ?? "");
    const name = dataset.name || file.name;
    const actions = h("div", { class: "dataset-actions" });
    for (const method of ["FEL", "FUBAR", "aBSREL", "MEME"]) {
      const button = h("button", { type: "button", class: "chip-button", text: `Run ${method}` });
      button.addEventListener("click", () => {
        els.input.value = `Run ${method} on dataset ${id}`;
        autoresize();
        els.input.focus();
      });
      actions.append(button);
    }
    pending.replaceWith(
      note(
        "dataset",
        h("div", { class: "dataset-head" }, h("span", { class: "file-icon" }, icon("file", 18)), h("strong", { text: name }), h("span", { class: "muted", text: ` dataset ${id}` })),
        h("p", { class: "facts", text: datasetFacts(dataset) || "Uploaded." }),
        actions,
      ),
    );
    refreshDatasets();
    if (!state.conversations.length) refreshConversations();
  } catch (err) {
    let children;
    if (err.status === 404 || err.status === 405) {
      children = [h("strong", { text: "Uploads are not available on this server yet." })];
    } else if (err.status === 422 && err.body && Array.isArray(err.body.problems)) {
      children = [
        h("strong", { text: `${file.name} was not accepted:` }),
        h("ul", {}, err.body.problems.map((p) => h("li", { text: describeProblem(p) }))),
      ];
    } else {
      children = [h("strong", { text: `Uploading ${file.name} failed: ` }), h("span", { text: err.message })];
    }
    pending.replaceWith(note("upload-failed", ...children));
  }
}

export async function refreshDatasets() {
  if (!state.token) {
    els.datasetsSection.hidden = true;
    return;
  }
  const token = state.token;
  try {
    const body = await apiJson("/datasets");
    if (state.token !== token) return;
    const items = Array.isArray(body) ? body : body.datasets || [];
    els.datasetList.replaceChildren(
      ...items.map((d) => h("li", { title: `dataset ${d.id}` }, h("span", { class: "name", text: d.name || d.id }), h("span", { class: "muted", text: datasetFacts(d) }))),
    );
    els.datasetsSection.hidden = items.length === 0;
  } catch {
    els.datasetsSection.hidden = true; // endpoint not there (yet) or no session
  }
}
