// seqcli explorer: the served model's translations, attention, beam search and exposure bias.
// Plain JavaScript over the public API (POST /translate, POST /score, GET /runs); no library.
"use strict";

const state = {
  runs: [], // GET /runs
  decode: {}, // the served defaults
  lines: [], // the source lines last translated
  chosen: 0, // the line whose attention and search are shown
  trace: null, // POST /translate trace of the chosen line
};

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}) {
  const node = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

const fixed = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status}: ${answer.detail || response.statusText}`);
  return answer;
}

// ---- tabs -----------------------------------------------------------------------------------

function showTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
}

for (const tab of document.querySelectorAll('[role="tab"]')) {
  tab.addEventListener("click", () => showTab(tab));
}

// ---- the served runs --------------------------------------------------------------------------

function describeModel(config) {
  const m = config.model || {};
  const train = config.train || {};
  const parts = [m.cell, m.bidirectional ? "bidirectional" : "unidirectional", `attention ${m.attention}`];
  if (train.teacher_forcing !== undefined && train.teacher_forcing < 1) parts.push(`teacher forcing ${train.teacher_forcing}`);
  return parts.filter(Boolean).join(", ");
}

async function loadRuns() {
  const answer = await api("/runs");
  state.runs = answer.runs;
  state.decode = answer.decode;
  $("served").textContent = state.runs.map((run) => `${run.name} (${describeModel(run.config)})`).join(" · ");
  const select = $("run");
  select.replaceChildren(el("option", {value: "", text: state.runs.length > 1 ? "the served model" : state.runs[0].name}));
  if (state.runs.length > 1) state.runs.forEach((run, i) => select.append(el("option", {value: String(i), text: run.name})));
  $("beam-size").value = state.decode.beam_size;
  $("n-best").value = state.decode.n_best;
  $("length-penalty").value = state.decode.length_penalty;
  $("rerank-alpha").value = state.decode.length_penalty;
  drawCurves();
}

function chosenRun() {
  const value = $("run").value;
  return value === "" ? null : Number(value);
}

function runConfig(run) {
  return (state.runs[run === null ? 0 : run] || {config: {}}).config;
}

// ---- translate ----------------------------------------------------------------------------------

function searchOptions() {
  return {
    beam_size: Number($("beam-size").value),
    n_best: Number($("n-best").value),
    length_penalty: Number($("length-penalty").value),
    run: chosenRun(),
  };
}

async function translate() {
  const status = $("translate-status");
  state.lines = $("source").value.split("\n").filter((line) => line.trim() !== "");
  if (state.lines.length === 0) {
    status.textContent = "Type a sentence first.";
    return;
  }
  status.textContent = "Translating…";
  try {
    const started = performance.now();
    const answer = await api("/translate", {text: state.lines, ...searchOptions()});
    status.textContent = `${state.lines.length} line(s) in ${Math.round(performance.now() - started)} ms`;
    showTranslations(answer.translations);
    await choose(Math.min(state.chosen, state.lines.length - 1));
  } catch (error) {
    status.textContent = `Error ${error.message}`;
  }
}

function showTranslations(translations) {
  const list = $("outputs");
  list.replaceChildren();
  translations.forEach((translation, i) => {
    const item = el("li", {tabindex: "0", "data-line": String(i)});
    item.append(el("div", {class: "translation", text: translation.text}));
    if (translation.hypotheses.length > 1) {
      const table = el("table", {class: "nbest"});
      table.append(el("tr", {}, el("th", {text: "hypothesis"}), el("th", {text: "score"}), el("th", {text: "normalized"})));
      for (const h of translation.hypotheses) {
        table.append(el("tr", {}, el("td", {text: h.text}), el("td", {text: fixed(h.score)}), el("td", {text: fixed(h.normalized_score)})));
      }
      item.append(table);
    } else {
      item.append(el("span", {class: "score", text: `score ${fixed(translation.hypotheses[0].score)}`}));
    }
    item.addEventListener("click", () => choose(i));
    item.addEventListener("keydown", (event) => { if (event.key === "Enter") choose(i); });
    list.append(item);
  });
}

// The views that show the chosen line's trace say aria-busy="true" until it has arrived; a choice
// made while an earlier one is still on its way wins, whichever answer comes back first.
let choices = 0;

async function choose(i) {
  const choice = ++choices;
  const views = [$("view-attention"), $("view-beam")];
  views.forEach((view) => view.setAttribute("aria-busy", "true"));
  state.chosen = i;
  for (const item of $("outputs").children) item.classList.toggle("chosen", Number(item.dataset.line) === i);
  try {
    const answer = await api("/translate", {text: [state.lines[i]], trace: true, ...searchOptions()});
    if (choice !== choices) return;
    state.trace = answer.translations[0].trace;
    showAttention();
    showTrace();
  } catch (error) {
    if (choice === choices) $("translate-status").textContent = `Error ${error.message}`;
  } finally {
    if (choice === choices) views.forEach((view) => view.removeAttribute("aria-busy"));
  }
}

$("translate").addEventListener("click", translate);
$("source").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    translate();
  }
});

// ---- attention ------------------------------------------------------------------------------------

function showAttention() {
  const trace = state.trace;
  const select = $("attention-hypothesis");
  const previous = select.value;
  select.replaceChildren(...trace.hypotheses.map((h, i) => el("option", {value: String(i), text: `${i + 1}. ${h.text}`})));
  if (previous && Number(previous) < trace.hypotheses.length) select.value = previous;
  drawHeatmap();
}

function drawHeatmap() {
  const grid = $("heatmap");
  const note = $("attention-note");
  grid.replaceChildren();
  $("attention-readout").textContent = "";
  const trace = state.trace;
  if (!trace || trace.hypotheses.length === 0) {
    note.textContent = "The source is empty: nothing to attend to.";
    return;
  }
  const hypothesis = trace.hypotheses[Number($("attention-hypothesis").value || 0)];
  const kind = (runConfig(chosenRun()).model || {}).attention;
  if (!hypothesis.attention) {
    note.textContent = kind === "none"
      ? "This model has no attention: every step reads one fixed context, the encoder's final state."
      : "No attention weights to show for this model (an ensemble has one per member: choose a run).";
    return;
  }
  note.textContent = kind === "hard"
    ? "Hard attention: each row is the distribution over source positions; a piece is read out of one position drawn from it, so its probability is the sum over positions weighted by this row."
    : `Attention: ${kind}.`;
  const source = trace.source_pieces;
  const target = [...hypothesis.pieces, "</s>"];
  grid.style.gridTemplateColumns = `max-content repeat(${source.length}, 2.2em)`;
  grid.append(el("div", {class: "corner"}));
  source.forEach((piece, s) => grid.append(el("div", {class: "source-piece", "data-source": String(s), text: piece})));
  target.forEach((piece, t) => {
    grid.append(el("div", {class: "target-piece", "data-target": String(t), text: piece}));
    source.forEach((sourcePiece, s) => {
      const weight = hypothesis.attention[t][s];
      const cell = el("div", {
        class: "cell", tabindex: "0", "data-target": String(t), "data-source": String(s),
        "aria-label": `${piece} ← ${sourcePiece}: ${weight.toFixed(3)}`,
      });
      cell.style.background = `rgba(29, 78, 216, ${weight.toFixed(3)})`;
      const highlight = () => {
        for (const other of grid.querySelectorAll(".lit")) other.classList.remove("lit");
        for (const other of grid.querySelectorAll(`[data-target="${t}"]:not(.cell), [data-source="${s}"]:not(.cell)`)) other.classList.add("lit");
        $("attention-readout").textContent = `“${piece}” looked at “${sourcePiece}” with weight ${weight.toFixed(3)}`;
      };
      cell.addEventListener("mouseenter", highlight);
      cell.addEventListener("focus", highlight);
      grid.append(cell);
    });
  });
}

$("attention-hypothesis").addEventListener("change", drawHeatmap);

// ---- beam search ------------------------------------------------------------------------------------

// A node's prefix: follow parents back through the slots kept at the earlier steps.
function prefixOf(steps, t, node) {
  const pieces = [node.piece];
  let parent = node.parent;
  for (let step = t - 1; step >= 1 && parent !== null; step--) {
    const kept = steps[step - 1].find((n) => n.slot === parent && n.status === "kept");
    if (!kept) break;
    pieces.unshift(kept.piece);
    parent = kept.parent;
  }
  return pieces;
}

const joinPieces = (pieces) => pieces.join(" ");

function showTrace() {
  const trace = state.trace;
  const slider = $("step");
  slider.max = String(Math.max(1, trace.steps.length));
  slider.value = String(Math.max(1, trace.steps.length));
  $("stop-reason").textContent = trace.steps.length
    ? `Search of beam ${trace.beam_size} stopped after ${trace.steps.length} step(s): ${trace.stop_reason}.`
    : trace.stop_reason;
  drawTree();
  rankFinished();
}

function drawTree() {
  const trace = state.trace;
  const shown = Number($("step").value);
  $("step-label").textContent = String(shown);
  const box = $("tree");
  box.replaceChildren();
  if (!trace || trace.steps.length === 0) return;
  const columnWidth = 130, rowHeight = 26, left = 40, top = 16;
  const rows = Math.max(...trace.steps.map((nodes) => nodes.length));
  const picture = svg("svg", {width: left + columnWidth * (shown + 0.5), height: top * 2 + rowHeight * rows, role: "img",
    "aria-label": `search tree, steps 1 to ${shown}`});
  const position = new Map(); // "step:slot" -> [x, y] of a kept node
  const edges = svg("g"), labels = svg("g"); // edges under the nodes
  picture.append(edges, labels);
  labels.append(svg("circle", {cx: left - 20, cy: top + rowHeight / 2, r: 5, class: "root"}));
  for (let t = 1; t <= shown; t++) {
    const nodes = [...trace.steps[t - 1]].sort((a, b) => b.score - a.score);
    nodes.forEach((node, row) => {
      const x = left + columnWidth * (t - 1), y = top + rowHeight * row + rowHeight / 2;
      const from = node.parent === null ? [left - 20, top + rowHeight / 2] : position.get(`${t - 1}:${node.parent}`);
      if (from) edges.append(svg("line", {x1: from[0] + 6, y1: from[1], x2: x, y2: y, class: `edge ${node.status}`}));
      const group = svg("g", {class: `node ${node.status}`, "data-step": String(t), "data-slot": node.slot === null ? "" : String(node.slot)});
      group.append(svg("circle", {cx: x, cy: y, r: 5}));
      const label = svg("text", {x: x + 8, y: y + 4});
      label.textContent = `${node.piece} ${node.score.toFixed(2)}`;
      const title = svg("title");
      title.textContent = `${joinPieces(prefixOf(trace.steps, t, node))}\nlog p ${node.log_prob.toFixed(3)}, score ${node.score.toFixed(3)}, normalized ${node.normalized_score.toFixed(3)} (${node.status})`;
      group.append(label, title);
      labels.append(group);
      if (node.status === "kept") position.set(`${t}:${node.slot}`, [x, y]);
    });
  }
  box.append(picture);
  const body = $("candidates").tBodies[0];
  body.replaceChildren();
  for (const node of [...trace.steps[shown - 1]].sort((a, b) => b.score - a.score)) {
    const prefix = prefixOf(trace.steps, shown, node).slice(0, -1);
    body.append(el("tr", {class: node.status}, el("td", {text: joinPieces(prefix)}), el("td", {text: node.piece}),
      el("td", {text: fixed(node.log_prob)}), el("td", {text: fixed(node.score)}), el("td", {text: fixed(node.normalized_score)}),
      el("td", {text: node.status})));
  }
}

// Every hypothesis the search finished (EOS) or ended (length limit), ranked under the α chosen.
function rankFinished() {
  const trace = state.trace;
  const body = $("finished").tBodies[0];
  body.replaceChildren();
  if (!trace) return;
  const alpha = Number($("rerank-alpha").value);
  const found = [];
  trace.steps.forEach((nodes, index) => {
    for (const node of nodes) {
      if (node.status !== "finished" && node.status !== "ended") continue;
      const pieces = prefixOf(trace.steps, index + 1, node);
      found.push({text: joinPieces(pieces), steps: index + 1, score: node.score,
        normalized: node.score / Math.pow((5 + index + 1) / 6, alpha)});
    }
  });
  found.sort((a, b) => b.normalized - a.normalized);
  found.forEach((h, rank) => body.append(el("tr", {}, el("td", {text: String(rank + 1)}), el("td", {text: h.text}),
    el("td", {text: String(h.steps)}), el("td", {text: fixed(h.score)}), el("td", {text: fixed(h.normalized)}))));
}

$("step").addEventListener("input", drawTree);
$("rerank-alpha").addEventListener("input", rankFinished);

// ---- exposure bias ------------------------------------------------------------------------------------

async function compareExposure() {
  const summary = $("exposure-summary");
  const body = $("exposure").tBodies[0];
  body.replaceChildren();
  summary.textContent = "Scoring…";
  let scored;
  try {
    scored = await api("/score", {source: $("exposure-source").value, reference: $("exposure-reference").value, run: chosenRun()});
  } catch (error) {
    summary.textContent = `Error ${error.message}`;
    return;
  }
  const steps = Math.max(scored.teacher_forced.length, scored.free_running.length);
  for (let j = 0; j < steps; j++) {
    const gold = scored.teacher_forced[j], own = scored.free_running[j];
    const row = el("tr", {"data-step": String(j + 1)}, el("td", {text: String(j + 1)}),
      el("td", {text: gold ? gold.piece : ""}), el("td", {text: gold ? fixed(Math.exp(gold.log_prob)) : ""}),
      el("td", {text: gold ? fixed(-gold.log_prob) : ""}), el("td", {text: gold ? gold.model_piece : ""}),
      el("td", {text: own ? own.piece : ""}), el("td", {text: own ? fixed(Math.exp(own.log_prob)) : ""}),
      el("td", {text: own && own.reference_log_prob !== null ? fixed(-own.reference_log_prob) : ""}));
    if (j === scored.first_divergence) row.classList.add("diverge");
    body.append(row);
  }
  const losses = `mean loss of the reference: ${fixed(scored.teacher_forced_loss)} with the gold prefix, ${fixed(scored.free_running_loss)} after the model's own prefix`;
  summary.textContent = scored.first_divergence === null
    ? `Free running follows the reference to the end; ${losses}.`
    : `Free running first parts from the reference at step ${scored.first_divergence + 1}; ${losses}.`;
}

$("score").addEventListener("click", compareExposure);
for (const id of ["exposure-source", "exposure-reference"]) {
  $(id).addEventListener("keydown", (event) => { if (event.key === "Enter") compareExposure(); });
}

// ---- side by side ------------------------------------------------------------------------------------

async function compareRuns() {
  const note = $("compare-note");
  const lines = $("source").value.split("\n").filter((line) => line.trim() !== "");
  const table = $("comparison");
  if (lines.length === 0) {
    note.textContent = "Type source lines in the Translate view first.";
    return;
  }
  note.textContent = state.runs.length > 1 ? "" : "One run is served: start `seqcli serve RUN_A RUN_B --side-by-side` to compare runs.";
  const {beam_size, n_best, length_penalty} = searchOptions();
  const answers = await Promise.all(state.runs.map((run, i) =>
    api("/translate", {text: lines, beam_size, n_best: Math.min(n_best, beam_size), length_penalty, run: i})));
  table.tHead.replaceChildren(el("tr", {}, el("th", {text: "source"}),
    ...state.runs.map((run) => el("th", {}, el("div", {text: run.name}), el("div", {class: "config", text: describeModel(run.config)})))));
  const body = table.tBodies[0];
  body.replaceChildren();
  lines.forEach((line, i) => body.append(el("tr", {}, el("td", {text: line}),
    ...answers.map((answer) => el("td", {text: answer.translations[i].text})))));
}

$("compare").addEventListener("click", compareRuns);

// ---- training curves ------------------------------------------------------------------------------------

function lineChart(title, series, field) {
  const width = 420, height = 220, pad = 40;
  const points = series.flatMap((s) => s.rows.filter((r) => r[field] !== null && r[field] !== undefined).map((r) => [r.step, r[field]]));
  const figure = el("figure", {class: "chart"}, el("figcaption", {text: title}));
  if (points.length === 0) {
    figure.append(el("p", {class: "note", text: "not logged yet"}));
    return figure;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - 2 * pad);
  const sy = (y) => height - pad + (y1 === y0 ? -0.5 : -(y - y0) / (y1 - y0)) * (height - 2 * pad);
  const picture = svg("svg", {width, height, role: "img", "aria-label": title});
  picture.append(svg("line", {x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis"}));
  picture.append(svg("line", {x1: pad, y1: pad, x2: pad, y2: height - pad, class: "axis"}));
  for (const [value, x, y, anchor] of [[y1, pad - 4, pad + 4, "end"], [y0, pad - 4, height - pad, "end"],
    [x0, pad, height - pad + 16, "start"], [x1, width - pad, height - pad + 16, "end"]]) {
    const label = svg("text", {x, y, "text-anchor": anchor, class: "tick"});
    label.textContent = Number.isInteger(value) ? String(value) : value.toFixed(2);
    picture.append(label);
  }
  series.forEach((s, i) => {
    const rows = s.rows.filter((r) => r[field] !== null && r[field] !== undefined);
    picture.append(svg("polyline", {points: rows.map((r) => `${sx(r.step)},${sy(r[field])}`).join(" "), class: `series series-${i % 6}`}));
  });
  figure.append(picture, el("p", {class: "legend"}, ...series.map((s, i) => el("span", {class: `series-${i % 6}`, text: `— ${s.name} `}))));
  return figure;
}

function drawCurves() {
  const series = state.runs.map((run) => ({name: run.name, rows: run.curves}));
  $("curves").replaceChildren(lineChart("training loss (per update, mean since the last evaluation)", series, "train_loss"),
    lineChart("valid loss", series, "valid_loss"), lineChart("valid BLEU", series, "valid_bleu"));
}

loadRuns().catch((error) => { $("served").textContent = `Could not read GET /runs: ${error.message}`; });
