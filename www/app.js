/*
 * The upload page: uploads each chosen image to POST v1/jobs with the
 * pipeline or preset, polls GET v1/jobs/ID until the job is over, then
 * fetches the result and shows it beside the original. URLs are relative
 * (the page works behind a proxy, under any prefix); the API key, if
 * any, is kept in sessionStorage and sent as X-Api-Key.
 */
"use strict";

const POLL_MS = 400;
const POLL_MAX = 1500; /* polls of one job: ten minutes at most */
const CHECK_DELAY_MS = 250; /* typing pause before a pipeline is checked */

const $ = (id) => document.getElementById(id);
const keyField = $("key"), presetField = $("preset"), pipelineField = $("pipeline");
const pipelineMsg = $("pipeline-msg"), presetsMsg = $("presets-msg");
let pipelineOk = true, checkSeq = 0, checkTimer = 0;

function headers() {
  const key = sessionStorage.getItem("imgnode-key");
  return key ? { "X-Api-Key": key } : {};
}

/* fetch, and the JSON body if there is one (null if not). */
async function call(url, options) {
  const resp = await fetch(url, Object.assign({ headers: headers() }, options));
  let body = null;
  if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) {
    body = await resp.json().catch(() => null);
  }
  return { resp, body };
}

function why(r) {
  if (r.body && r.body.error) {
    const d = r.body.detail || "";
    return d.startsWith(r.body.error) ? d : r.body.error + (d ? ": " + d : "");
  }
  return "HTTP " + r.resp.status;
}

function bytes(n) {
  if (n < 1024) return n + " bytes";
  const units = ["KiB", "MiB", "GiB"];
  let v = n, i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return v.toFixed(v < 10 ? 1 : 0) + " " + units[i] + " (" + n.toLocaleString("en") + " bytes)";
}

function describe(info) {
  if (!info) return "";
  return [info.format, info.width + "×" + info.height, bytes(info.bytes)].join(" · ");
}

/* ---- settings ---- */

async function loadPresets() {
  const r = await call("v1/presets").catch((e) => ({ resp: null, body: null, e }));
  const keep = presetField.value;
  while (presetField.options.length > 1) presetField.remove(1);
  presetsMsg.textContent = "";
  if (!r.resp) {
    presetsMsg.textContent = "The node did not answer: " + r.e.message;
    return;
  }
  if (r.resp.status === 401) {
    presetsMsg.textContent = "This node needs an API key: paste it above.";
    return;
  }
  if (!r.resp.ok || !r.body) {
    presetsMsg.textContent = "Unable to list the presets: " + why(r);
    return;
  }
  for (const p of r.body.presets) {
    const o = document.createElement("option");
    o.value = p.name;
    o.textContent = p.name + ": " + p.pipeline;
    o.dataset.pipeline = p.pipeline;
    presetField.add(o);
  }
  if (!r.body.presets.length) presetsMsg.textContent = "This node has no presets.";
  if (r.body.presets_only) {
    presetField.options[0].disabled = true;
    presetsMsg.textContent = "This node takes presets only.";
  }
  presetField.value = keep;
  if (presetField.selectedIndex < 0 || presetField.selectedOptions[0].disabled) {
    presetField.selectedIndex = r.body.presets.length ? 1 : 0;
  }
  presetChanged();
}

function showPipelineError(text, body) {
  pipelineMsg.className = "msg bad";
  pipelineMsg.textContent = "";
  if (body && body.column) {
    /* the text and a caret under the column the parser names */
    const pre = document.createElement("pre");
    pre.textContent = text + "\n" + " ".repeat(Math.max(0, body.column - 1)) + "^";
    pipelineMsg.append(pre);
  }
  const line = document.createElement("div");
  line.textContent = body ? body.detail : "unable to check the pipeline";
  pipelineMsg.append(line);
  pipelineField.classList.add("invalid");
}

async function checkPipeline() {
  const text = pipelineField.value, seq = ++checkSeq;
  if (presetField.value) return;
  if (!text.trim()) {
    pipelineOk = false;
    pipelineMsg.className = "msg bad";
    pipelineMsg.textContent = "Type a pipeline, or choose a preset.";
    return;
  }
  const r = await call("v1/pipeline/check?pipeline=" + encodeURIComponent(text))
    .catch(() => null);
  if (seq !== checkSeq) return; /* typed on since */
  if (!r) {
    pipelineOk = true; /* the upload will say */
    pipelineMsg.className = "msg";
    pipelineMsg.textContent = "The node did not answer; not checked.";
    return;
  }
  pipelineOk = r.resp.ok;
  if (r.resp.ok && r.body) {
    pipelineField.classList.remove("invalid");
    pipelineMsg.className = "msg ok";
    pipelineMsg.textContent = "✓ " + r.body.canonical;
  } else if (r.resp.status === 401) {
    pipelineOk = true;
    pipelineMsg.className = "msg bad";
    pipelineMsg.textContent = "This node needs an API key: paste it above.";
  } else {
    showPipelineError(text, r.body && r.body.detail ? r.body : null);
  }
}

function pipelineTyped() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(checkPipeline, CHECK_DELAY_MS);
}

function presetChanged() {
  const o = presetField.selectedOptions[0];
  if (presetField.value) {
    checkSeq++;
    pipelineField.disabled = true;
    pipelineField.value = o.dataset.pipeline;
    pipelineField.classList.remove("invalid");
    pipelineMsg.className = "msg ok";
    pipelineMsg.textContent = "Preset " + presetField.value + ".";
    pipelineOk = true;
  } else {
    pipelineField.disabled = false;
    checkPipeline();
  }
}

keyField.value = sessionStorage.getItem("imgnode-key") || "";
keyField.addEventListener("change", () => {
  const key = keyField.value.trim();
  if (key) sessionStorage.setItem("imgnode-key", key);
  else sessionStorage.removeItem("imgnode-key");
  loadPresets();
});
presetField.addEventListener("change", presetChanged);
pipelineField.addEventListener("input", pipelineTyped);

/* ---- jobs ---- */

/* A job's card, inserted before anchor (null: at the end). */
function card(file, anchor) {
  const li = $("job-template").content.firstElementChild.cloneNode(true);
  const q = (sel) => li.querySelector(sel);
  li.querySelector(".name").textContent = file.name;
  const img = q(".original img");
  img.addEventListener("error", () => {
    img.removeAttribute("src");
    q(".original figcaption").textContent = bytes(file.size) + ", which this browser cannot show";
  }, { once: true });
  img.src = URL.createObjectURL(file);
  q(".original figcaption").textContent = bytes(file.size);
  $("jobs").insertBefore(li, anchor);
  return {
    li,
    state(s, reason) {
      const el = q(".state");
      el.textContent = s;
      el.className = "state " + s;
      li.dataset.state = s;
      q(".reason").textContent = reason || "";
      if (s === "failed" || s === "refused") q(".result figcaption").textContent = "no result";
    },
    id(id) { q(".id").textContent = id; li.dataset.id = id; },
    record(rec) {
      if (rec.input) q(".original figcaption").textContent = describe(rec.input);
      if (rec.output) q(".result figcaption").textContent = describe(rec.output);
    },
    result(blob, name) {
      const url = URL.createObjectURL(blob);
      q(".result img").src = url;
      const a = q(".download");
      a.href = url;
      a.download = name;
      a.hidden = false;
    },
  };
}

function resultName(file, rec) {
  const ext = { jpeg: "jpg", png: "png", webp: "webp", avif: "avif", gif: "gif", tiff: "tif", heif: "heic" };
  const base = file.name.replace(/\.[^.]*$/, "") || "image";
  const f = rec.output && rec.output.format;
  return base + "-imgnode." + (ext[f] || f || "bin");
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function follow(c, file, id) {
  for (let i = 0; i < POLL_MAX; i++) {
    const r = await call("v1/jobs/" + id).catch((e) => ({ resp: null, e }));
    if (!r.resp) {
      c.state("unknown", "The node did not answer: " + r.e.message + "; retrying");
    } else if (!r.resp.ok || !r.body) {
      c.state("unknown", "Unable to read the job: " + why(r) + "; retrying");
    } else {
      const rec = r.body;
      c.record(rec);
      if (rec.status === "failed") {
        c.state("failed", rec.error || "the job failed");
        return;
      }
      if (rec.status === "done") {
        const res = await fetch("v1/jobs/" + id + "/result", { headers: headers() });
        if (!res.ok) {
          c.state("failed", "Unable to fetch the result: HTTP " + res.status);
          return;
        }
        c.result(await res.blob(), resultName(file, rec));
        c.state("done");
        return;
      }
      c.state(rec.status);
    }
    await sleep(POLL_MS);
  }
  c.state("unknown", "Still not done; stopped asking. Job " + id);
}

async function upload(file, c) {
  if (!pipelineOk) {
    c.state("refused", "The pipeline is not valid: fix it above, then upload again.");
    return;
  }
  const q = presetField.value
    ? "preset=" + encodeURIComponent(presetField.value)
    : "pipeline=" + encodeURIComponent(pipelineField.value);
  c.state("uploading");
  /* a key of its own: nginx may send the upload again to another node
   * if the first failed mid-request, and no second job is made */
  const idem = Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
  const r = await call("v1/jobs?" + q, {
    method: "POST",
    body: file,
    headers: Object.assign({ "Content-Type": "application/octet-stream",
      "Idempotency-Key": idem }, headers()),
  }).catch((e) => ({ resp: null, e }));
  if (!r.resp) {
    c.state("refused", "The node did not answer: " + r.e.message);
    return;
  }
  if (r.resp.status !== 202 || !r.body || !r.body.id) {
    c.state("refused", why(r));
    return;
  }
  c.id(r.body.id);
  c.state(r.body.status);
  follow(c, file, r.body.id); /* the next upload need not wait for it */
}

/* Uploads files one after the other, their cards above the earlier
 * ones, in the order chosen. */
async function uploadAll(files) {
  const anchor = $("jobs").firstChild;
  const cards = Array.from(files, (f) => [f, card(f, anchor)]);
  for (const [, c] of cards) c.state("waiting");
  for (const [f, c] of cards) await upload(f, c);
}

const drop = $("drop");
$("files").addEventListener("change", (e) => {
  uploadAll(e.target.files);
  e.target.value = "";
});
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  uploadAll(e.dataTransfer.files);
});

loadPresets();
