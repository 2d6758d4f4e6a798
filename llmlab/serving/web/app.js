// llmlab web page: chat with documents, decoding playground, feedback ranking. Plain JS, no dependencies.
// Every text from the model or the user is inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let info = { model: "model", store: null };

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  return data;
}

// POST a streaming request; call onChunk(parsed) for each server-sent event until [DONE].
async function stream(path, body, onChunk) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error((data.error && data.error.message) || response.statusText);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new Error(parsed.error.message);
        onChunk(parsed);
      }
    }
  }
}

// -- tabs ---------------------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab, .panel").forEach((n) => n.classList.remove("active"));
    tab.classList.add("active");
    $(tab.dataset.tab).classList.add("active");
    if (tab.dataset.tab === "playground") refreshChart();
  });
}

// -- chat ---------------------------------------------------------------------------------------------------
const history = [];

$("chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) return;
  $("chat-input").value = "";
  history.push({ role: "user", content: text });
  $("messages").append(el("div", { class: "msg user" }, text));
  const bubble = el("div", { class: "msg assistant" });
  const body = el("span", { class: "answer" });
  bubble.append(body);
  $("messages").append(bubble);
  $("chat-send").disabled = true;
  const request = { model: info.model, messages: history.slice(-8), max_tokens: Number($("chat-max").value) };
  if ($("use-docs").checked && info.store) request.retrieval = { chunks: 3 };
  try {
    await stream("/v1/chat/completions", request, (chunk) => {
      for (const choice of chunk.choices || []) {
        if (choice.delta && choice.delta.content) body.textContent += choice.delta.content;
      }
      if (chunk.sources) showSources(bubble, chunk.sources, chunk.context || []);
    });
    history.push({ role: "assistant", content: body.textContent });
    bubble.dataset.done = "true";
  } catch (err) {
    bubble.classList.add("error");
    body.textContent = "error: " + err.message;
  } finally {
    $("chat-send").disabled = false;
  }
});

// The passages that support the answer; when none does, the passages the model was given, marked so.
function showSources(bubble, sources, context) {
  const list = el("ol", { class: "sources" });
  const shown = sources.length ? sources : context;
  const note = sources.length ? "sources" : "no passage supports this answer; retrieved";
  bubble.append(el("div", { class: "sources-title muted" }, note + ":"));
  for (const s of shown) {
    const item = el("li", { class: "source" });
    const text = s.snippet || (s.text || "").slice(0, 160);
    item.append(el("b", {}, `[${s.block}] ${s.label}`), document.createTextNode(" — " + text));
    list.append(item);
  }
  bubble.append(list);
}

$("chat-clear").addEventListener("click", () => { history.length = 0; $("messages").textContent = ""; });

// -- playground ---------------------------------------------------------------------------------------------
const STAGE_COLORS = ["#98a2b3", "#2f5bd3", "#12b76a", "#f79009", "#d92d20", "#7a5af8"];

function settings() {
  return {
    prompt: $("pg-prompt").value,
    chat: $("pg-chat").checked,
    greedy: $("pg-mode").value === "greedy",
    temperature: Number($("pg-temperature").value),
    top_k: Number($("pg-top-k").value) || 0,
    top_p: Number($("pg-top-p").value),
    min_p: Number($("pg-min-p").value),
  };
}

let chartTimer = null;
function refreshChart() {
  clearTimeout(chartTimer);
  chartTimer = setTimeout(async () => {
    try {
      drawChart(await api("/v1/llmlab/next-token", { model: info.model, top: 10, ...settings() }));
    } catch (err) {
      $("pg-chart").textContent = "error: " + err.message;
    }
  }, 120);
}

function drawChart(data) {
  const ns = "http://www.w3.org/2000/svg";
  const stages = data.stages, n = data.tokens.length;
  const width = 920, height = 300, left = 40, bottom = 60, top = 30;
  const group = (width - left - 10) / n, bar = Math.max(2, (group - 8) / stages.length);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  const max = Math.max(1e-9, ...stages.flatMap((s) => s.probs));
  const y = (p) => top + (height - top - bottom) * (1 - p / max);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: left, x2: width - 5, y1: height - bottom, y2: height - bottom, stroke: "#98a2b3" });
  add("text", { x: 4, y: top + 4, "font-size": 11 }, max.toFixed(2));
  data.tokens.forEach((token, i) => {
    stages.forEach((stage, s) => {
      const p = stage.probs[i], x = left + i * group + 4 + s * bar;
      const rect = add("rect", { x, y: y(p), width: bar - 1, height: Math.max(0, height - bottom - y(p)),
        fill: STAGE_COLORS[s % STAGE_COLORS.length], class: "bar" });
      rect.dataset.p = p;
      const title = document.createElementNS(ns, "title");
      title.textContent = `${JSON.stringify(token)} ${stage.name}: ${(100 * p).toFixed(1)}%`;
      rect.append(title);
    });
    add("text", { x: left + i * group + group / 2, y: height - bottom + 16, "text-anchor": "middle", "font-size": 12 },
      JSON.stringify(token).slice(1, -1).slice(0, 12));
  });
  let x = left;
  stages.forEach((stage, s) => {
    const label = `${stage.name} (${stage.kept} kept)`;
    add("rect", { x, y: height - 22, width: 12, height: 12, fill: STAGE_COLORS[s % STAGE_COLORS.length] });
    add("text", { x: x + 16, y: height - 12, "font-size": 12 }, label);
    x += 16 + 7 * label.length + 18;
  });
  const chart = $("pg-chart");
  chart.textContent = "";
  chart.append(svg);
  chart.dataset.version = String(Number(chart.dataset.version) + 1);
  chart.dataset.probs = JSON.stringify(stages.map((s) => s.probs));
}

for (const id of ["pg-temperature", "pg-top-p", "pg-min-p"]) {
  $(id).addEventListener("input", () => { $(id + "-out").textContent = $(id).value; refreshChart(); });
}
for (const id of ["pg-prompt", "pg-top-k", "pg-mode", "pg-chat"]) $(id).addEventListener("input", refreshChart);

$("pg-generate").addEventListener("click", async () => {
  const s = settings();
  const out = $("pg-output");
  out.textContent = "";
  const request = {
    model: info.model, max_tokens: Number($("pg-max").value), seed: Number($("pg-seed").value),
    temperature: s.greedy ? 0 : s.temperature, top_k: s.top_k, top_p: s.top_p, min_p: s.min_p,
  };
  const [path, extra] = s.chat
    ? ["/v1/chat/completions", { messages: [{ role: "user", content: s.prompt }] }]
    : ["/v1/completions", { prompt: s.prompt }];
  try {
    await stream(path, { ...request, ...extra }, (chunk) => {
      for (const c of chunk.choices || []) out.textContent += c.text || (c.delta && c.delta.content) || "";
    });
  } catch (err) {
    out.textContent = "error: " + err.message;
  }
});

// -- feedback -----------------------------------------------------------------------------------------------
let current = null;

$("fb-generate").addEventListener("click", async () => {
  const n = Number($("fb-n").value), prompt = $("fb-prompt").value.trim();
  if (!prompt) return;
  $("fb-generate").disabled = true;
  $("fb-status").textContent = "generating…";
  try {
    const data = await api("/v1/chat/completions", {
      model: info.model, n, temperature: Number($("fb-temperature").value), max_tokens: Number($("fb-max").value),
      seed: Math.floor(Math.random() * 1e9), messages: [{ role: "user", content: prompt }],
    });
    current = { prompt, completions: data.choices.map((c) => c.message.content || "") };
    const list = $("fb-completions");
    list.textContent = "";
    current.completions.forEach((text, i) => {
      const item = el("li");
      const select = el("select", { class: "rank", "aria-label": `rank of completion ${i + 1}` });
      for (let r = 1; r <= n; r++) select.append(el("option", { value: r }, String(r)));
      select.value = String(i + 1);
      item.append(select, document.createTextNode(text || "(empty)"));
      list.append(item);
    });
    $("fb-save").disabled = false;
    $("fb-status").textContent = "";
  } catch (err) {
    $("fb-status").textContent = "error: " + err.message;
  } finally {
    $("fb-generate").disabled = false;
  }
});

$("fb-save").addEventListener("click", async () => {
  if (!current) return;
  const ranks = [...document.querySelectorAll("#fb-completions select")].map((s) => Number(s.value));
  try {
    const data = await api("/v1/llmlab/rankings", { ...current, ranks, criterion: $("fb-criterion").value || null });
    $("fb-status").textContent = `saved: ${data.count} ranking(s) in ${data.file}`;
    $("fb-save").disabled = true;
  } catch (err) {
    $("fb-status").textContent = "not saved: " + err.message;
  }
});

// -- start --------------------------------------------------------------------------------------------------
(async () => {
  try {
    info = await api("/v1/llmlab/info");
    const store = info.store ? ` · store ${info.store.location} (${info.store.documents} documents)` : " · no store";
    $("info").textContent = `${info.model}${store}`;
    $("fb-file").textContent = info.rankings;
    if (!info.store) { $("use-docs").checked = false; $("use-docs").disabled = true; }
  } catch (err) {
    $("info").textContent = "error: " + err.message;
  }
})();
