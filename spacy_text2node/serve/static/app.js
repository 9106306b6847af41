// The review page of `text2node serve`: link a note, click a mention, see its candidates and
// where its concept sits in the taxonomy. Plain browser JavaScript: no build step, no CDN.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { info: null, record: null, spans: [], selected: -1, noteId: "note" };

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function fetchJSON(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error(`The service did not answer (${err.message}). Is text2node serve still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

async function loadInfo() {
  try {
    const info = await fetchJSON("info");
    state.info = info;
    const tax = info.taxonomy ? `${info.taxonomy.name} (${info.taxonomy.size.toLocaleString()} concepts)` : "no taxonomy";
    const parts = [`Model ${info.model}`, `taxonomy ${tax}`, `pipeline: ${info.pipeline.join(" → ")}`];
    parts.push(info.negation ? "negation on" : "negation off");
    $("#info").textContent = parts.join(" · ");
  } catch (err) {
    $("#info").textContent = "";
    showError(err.message);
  }
}

async function linkNote() {
  const text = $("#note").value;
  showError("");
  if (!text.trim()) {
    showError("The note is empty: paste a note or open a .txt file.");
    return;
  }
  const button = $("#link-btn");
  button.disabled = true;
  $("#status").textContent = "Linking…";
  const t0 = performance.now();
  try {
    const record = await fetchJSON("link", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text, id: state.noteId, render: true }),
    });
    showRecord(record, performance.now() - t0);
  } catch (err) {
    $("#status").textContent = "";
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

function showRecord(record, ms) {
  state.record = record;
  const source = state.info ? state.info.render_source : "ents";
  state.spans = record.spans.filter((s) => s.source === source);
  $("#render").innerHTML = record.html; // displaCy's HTML: the note's text is escaped by the server
  const marks = Array.from(document.querySelectorAll("#render mark.entity"));
  marks.forEach((mark, i) => {
    const span = state.spans[i];
    if (!span) return;
    mark.dataset.span = String(i);
    mark.tabIndex = 0;
    mark.setAttribute("role", "button");
    if (!span.concept_id) mark.classList.add("nil");
    if (span.negated) {
      mark.classList.add("negated");
      mark.title = "negated";
      mark.appendChild(el("span", "NEG", "neg-badge"));
    }
    mark.querySelectorAll("a").forEach((a) => {
      if (a.getAttribute("href") === "#") a.removeAttribute("href");
      else { a.target = "_blank"; a.rel = "noopener"; }
    });
    mark.addEventListener("click", (ev) => {
      if (ev.target.closest("a[href]")) return; // the concept's external page
      selectMention(i);
    });
    mark.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectMention(i); }
    });
  });
  const linked = state.spans.filter((s) => s.concept_id).length;
  const negated = state.spans.filter((s) => s.negated).length;
  let status = `${record.spans.length} mention(s), ${linked} linked`;
  if (state.info && state.info.negation) status += `, ${negated} negated`;
  $("#status").textContent = `${status} · ${record.n_tokens} tokens · ${Math.round(ms)} ms`;
  $("#download").disabled = false;
  state.selected = -1;
  $("#details-body").hidden = true;
  $("#details-empty").hidden = false;
  $("#details-empty").textContent = record.spans.length ? "None selected." : "No mentions found in this note.";
}

function selectMention(i) {
  const span = state.spans[i];
  state.selected = i;
  document.querySelectorAll("#render mark.entity").forEach((m) => m.classList.toggle("selected", m.dataset.span === String(i)));
  $("#details-empty").hidden = true;
  $("#details-body").hidden = false;
  $("#mention-text").textContent = span.text;
  $("#mention-neg").hidden = !span.negated;
  const concept = $("#mention-concept");
  concept.replaceChildren();
  if (span.concept_id) {
    concept.append(el("code", span.concept_id), " ", span.concept_label || "");
    if (span.score !== null && span.score !== undefined) concept.append(el("span", ` score ${span.score.toFixed(3)}`, "muted"));
  } else {
    concept.append(el("span", "Not linked (NIL): no candidate passed the linker's threshold.", "muted"));
  }
  const body = $("#candidates tbody");
  body.replaceChildren();
  span.candidates.forEach((cand, rank) => {
    const row = el("tr");
    if (cand.concept_id === span.concept_id) row.classList.add("chosen");
    row.dataset.concept = cand.concept_id || "";
    row.append(el("td", rank + 1, "num"), el("td"), el("td", cand.concept_label), el("td", cand.score === null ? "" : cand.score.toFixed(3), "num"));
    row.children[1].append(el("code", cand.concept_id));
    row.addEventListener("click", () => showConcept(cand.concept_id));
    body.append(row);
  });
  if (!span.candidates.length) body.append(Object.assign(el("tr"), { innerHTML: "<td colspan=4 class=muted>no candidates</td>" }));
  const first = span.concept_id || (span.candidates[0] && span.candidates[0].concept_id);
  if (first) showConcept(first);
  else { $("#path").replaceChildren(); $("#concept-extra").textContent = ""; }
}

async function showConcept(id) {
  document.querySelectorAll("#candidates tbody tr").forEach((r) => r.classList.toggle("shown", r.dataset.concept === id));
  const path = $("#path");
  path.replaceChildren(el("li", "Loading…", "muted"));
  $("#concept-extra").textContent = "";
  try {
    const concept = await fetchJSON(`concepts/${encodeURIComponent(id)}`);
    path.replaceChildren();
    concept.path.forEach((node) => {
      const item = el("li");
      item.append(el("code", node.id), " ", node.label);
      path.append(item);
    });
    const extra = [];
    if (concept.synonyms.length) extra.push(`Synonyms: ${concept.synonyms.slice(0, 6).map((s) => s.text).join("; ")}${concept.synonyms.length > 6 ? "; …" : ""}`);
    extra.push(`${concept.n_children} child concept(s)`);
    if (concept.parents.length > 1) extra.push(`${concept.parents.length} parents`);
    $("#concept-extra").textContent = extra.join(" · ");
  } catch (err) {
    path.replaceChildren();
    showError(err.message);
  }
}

function download() {
  if (!state.record) return;
  const { html, ...record } = state.record; // the record as `text2node link` writes it
  const blob = new Blob([JSON.stringify(record, null, 2) + "\n"], { type: "application/json" });
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${state.noteId || "note"}.json`;
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
}

function openFile(ev) {
  const file = ev.target.files && ev.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    $("#note").value = reader.result;
    state.noteId = file.name.replace(/\.[^.]*$/, "") || "note";
    linkNote();
  };
  reader.onerror = () => showError(`Could not read ${file.name}: ${reader.error}`);
  reader.readAsText(file);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#link-btn").addEventListener("click", linkNote);
  $("#download").addEventListener("click", download);
  $("#file").addEventListener("change", openFile);
  $("#note").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) linkNote();
  });
  loadInfo();
});
