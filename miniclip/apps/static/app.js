// miniclip serve: the page's script. Draw on the canvas (pointer events), send it as a PNG to
// /api/classify with the labels, draw the answer as bars; search the index through /api/search.
"use strict";

const SHAPES_COLORS = { red: "#e12323", orange: "#f58714", yellow: "#f0e128", green: "#28be3c",
                        cyan: "#28d7e1", blue: "#2d55f0", purple: "#a03cd2", white: "#f0f0f0" };
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);

function clearCanvas() {
  ctx.fillStyle = "#000";  // the shapes world's shapes sit on a dark background
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// ---------------------------------------------------------------- drawing
let last = null;
function point(event) {
  const box = canvas.getBoundingClientRect();
  return { x: (event.clientX - box.left) * canvas.width / box.width,
           y: (event.clientY - box.top) * canvas.height / box.height };
}
function stroke(from, to) {
  ctx.strokeStyle = $("color").value;
  ctx.lineWidth = Number($("brush").value);
  ctx.lineCap = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}
canvas.addEventListener("pointerdown", (e) => { last = point(e); stroke(last, last); canvas.setPointerCapture(e.pointerId); });
canvas.addEventListener("pointermove", (e) => { if (last) { const p = point(e); stroke(last, p); last = p; } });
canvas.addEventListener("pointerup", () => { if (last) { last = null; ask(); } });

// ---------------------------------------------------------------- asking the model
async function ask() {
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const form = new FormData();
  form.append("image", blob, "drawing.png");
  form.append("labels", $("labels").value);
  await classify(form);
}

async function classify(form) {
  try {
    const response = await fetch("/api/classify", { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) { showError(body.error || response.statusText); return; }
    showError("");
    drawBars(body.labels, body.probs);
  } catch (err) {
    showError("the server did not answer: " + err);
  }
}

function drawBars(labels, probs) {
  const bars = $("bars");
  bars.replaceChildren();
  labels.slice(0, 10).forEach((label, i) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (100 * probs[i]).toFixed(1) + "%";
    const p = document.createElement("span");
    p.className = "p";
    p.textContent = (100 * probs[i]).toFixed(1) + "%";
    li.append(name, bar, p);
    bars.append(li);
  });
  document.body.dataset.answered = String(Number(document.body.dataset.answered || 0) + 1);
}

// An uploaded image: shown on the canvas (fitted, on black), and the file itself is classified.
$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("labels", $("labels").value);
  try {
    const bitmap = await createImageBitmap(file);
    clearCanvas();
    const s = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
    ctx.drawImage(bitmap, (canvas.width - s * bitmap.width) / 2, (canvas.height - s * bitmap.height) / 2,
                  s * bitmap.width, s * bitmap.height);
  } catch (err) { /* the browser cannot show it: the server still says why it cannot read it */ }
  await classify(form);
  $("upload").value = "";
});

// ---------------------------------------------------------------- search
$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const results = $("results");
  results.replaceChildren();
  try {
    const response = await fetch("/api/search", { method: "POST", headers: { "Content-Type": "application/json" },
                                                  body: JSON.stringify({ query: $("query").value, top: 12 }) });
    const body = await response.json();
    if (!response.ok) { $("search-note").textContent = body.error; return; }
    $("search-note").textContent = body.results.length + " nearest images (cosine similarity)";
    for (const r of body.results) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = "/thumb/" + r.id;
      img.alt = r.path;
      img.title = r.path;
      const caption = document.createElement("figcaption");
      caption.textContent = r.score.toFixed(3);
      figure.append(img, caption);
      results.append(figure);
    }
  } catch (err) {
    $("search-note").textContent = "the server did not answer: " + err;
  }
});

// ---------------------------------------------------------------- start
$("clear").addEventListener("click", () => { clearCanvas(); $("bars").replaceChildren(); });
$("ask").addEventListener("click", ask);
for (const [name, hex] of Object.entries(SHAPES_COLORS)) {
  const b = document.createElement("button");
  b.type = "button";
  b.title = name;
  b.style.background = hex;
  b.addEventListener("click", () => { $("color").value = hex; });
  $("swatches").append(b);
}
clearCanvas();
fetch("/api/info").then((r) => r.json()).then((info) => {
  $("labels").value = info.labels.join(", ");
  $("model").textContent = `model ${info.model} (${info.fingerprint}), ${info.resolution}px` +
    (info.index === null ? "; no index (start with --index to search)" : `; index of ${info.index} images`);
  if (info.index === null) $("search").hidden = true;
  document.body.dataset.ready = "1";
});
