// Set-up: a blurred still of the camera, the line, zones and masks drawn on it with the mouse, saved to the config.
"use strict";

const CLOSE_PX = 14; // a click this near a polygon's first corner closes it
const setup = { cameras: [], camera: null, shape: null, saved: null, tool: null, drawing: null, figures: null };

function current() {
  return setup.cameras.find((camera) => camera.id === setup.camera);
}

function frameSize() {
  const camera = current();
  const image = document.getElementById("still");
  return [camera.width || image.naturalWidth || 1280, camera.height || image.naturalHeight || 720];
}

function toFraction(event) {
  const overlay = document.getElementById("overlay");
  const point = overlay.createSVGPoint();
  point.x = event.clientX;
  point.y = event.clientY;
  const inside = point.matrixTransform(overlay.getScreenCTM().inverse());
  const [width, height] = frameSize();
  const clamp = (value) => Math.min(Math.max(value, 0), 1);
  return [Number(clamp(inside.x / width).toFixed(4)), Number(clamp(inside.y / height).toFixed(4))];
}

function pixels(point) {
  const [width, height] = frameSize();
  return [point[0] * width, point[1] * height];
}

function polygonPoints(polygon) {
  return polygon.map((point) => pixels(point).join(",")).join(" ");
}

function screenScale() {
  // frame pixels per screen pixel: marks keep their size on screen whatever the stream's resolution
  const width = document.getElementById("overlay").getBoundingClientRect().width;
  return width ? frameSize()[0] / width : 1;
}

function drawLine(overlay, line, preview) {
  const [x1, y1] = pixels(line.start);
  const [x2, y2] = pixels(line.end);
  const group = svgElement("g", { class: preview ? "line preview" : "line", "data-testid": "line" });
  group.appendChild(svgElement("line", { x1, y1, x2, y2 }));
  const length = Math.hypot(x2 - x1, y2 - y1);
  if (length > 1) {
    // 'in' is the right-hand side of start -> end (positive signed distance): the normal (-dy, dx)
    const scale = screenScale();
    const [nx, ny] = [-(y2 - y1) / length, (x2 - x1) / length];
    const [mx, my] = [(x1 + x2) / 2, (y1 + y2) / 2];
    const reach = 46 * scale, head = 14 * scale, font = 18 * scale;
    const [tx, ty] = [mx + nx * reach, my + ny * reach];
    group.appendChild(svgElement("line", { x1: mx - nx * reach, y1: my - ny * reach, x2: tx, y2: ty, class: "arrow" }));
    group.appendChild(svgElement("polygon", {
      class: "arrowhead",
      points: `${tx + nx * head},${ty + ny * head} ${tx - ny * head * 0.6},${ty + nx * head * 0.6} ` +
        `${tx + ny * head * 0.6},${ty - nx * head * 0.6}`,
    }));
    const label = (sign, text) => svgElement("text", { x: mx + sign * nx * (reach + 2.2 * head),
      y: my + sign * ny * (reach + 2.2 * head) + font / 3, class: `label ${text}`, "font-size": font }, text);
    group.appendChild(label(1, "in"));
    group.appendChild(label(-1, "out"));
  }
  overlay.appendChild(group);
}

function render() {
  const overlay = document.getElementById("overlay");
  const [width, height] = frameSize();
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  overlay.replaceChildren();
  const shape = setup.shape;
  shape.masks.forEach((mask, index) => {
    overlay.appendChild(svgElement("polygon", { points: polygonPoints(mask), class: "mask", "data-mask": index }));
  });
  for (const zone of shape.zones) {
    overlay.appendChild(svgElement("polygon", { points: polygonPoints(zone.polygon), class: "zone", "data-zone": zone.name }));
    const [x, y] = pixels(zone.polygon[0]);
    const font = 18 * screenScale();
    overlay.appendChild(svgElement("text", { x: x + font, y: y + font * 1.4, class: "label", "font-size": font }, zone.name));
  }
  if (shape.line) drawLine(overlay, shape.line, false);
  const drawing = setup.drawing;
  if (drawing && drawing.kind === "line" && drawing.end) drawLine(overlay, drawing, true);
  if (drawing && drawing.kind !== "line" && drawing.points.length) {
    const points = drawing.hover ? [...drawing.points, drawing.hover] : drawing.points;
    overlay.appendChild(svgElement("polyline", { points: polygonPoints(points), class: `${drawing.kind} preview` }));
    const [x, y] = pixels(drawing.points[0]);
    overlay.appendChild(svgElement("circle", { cx: x, cy: y, r: (CLOSE_PX / 2) * screenScale(), class: "first-corner" }));
  }
  renderShapes();
}

function renderShapes() {
  const list = document.getElementById("shapes");
  list.replaceChildren();
  const shape = setup.shape;
  const item = (text, remove) => {
    const entry = htmlElement("li", {}, text);
    const button = htmlElement("button", { class: "small", title: "remove" }, "remove");
    button.addEventListener("click", () => { remove(); changed(); });
    entry.appendChild(button);
    list.appendChild(entry);
  };
  if (shape.line) item(`counting line ${JSON.stringify(shape.line.start)} → ${JSON.stringify(shape.line.end)}`,
    () => { shape.line = null; });
  shape.zones.forEach((zone, index) => item(`zone ${zone.name} (${zone.polygon.length} corners)`,
    () => shape.zones.splice(index, 1)));
  shape.masks.forEach((mask, index) => item(`mask ${index + 1} (${mask.length} corners)`,
    () => shape.masks.splice(index, 1)));
  if (!list.children.length) list.appendChild(htmlElement("li", { class: "empty" }, "no line, zone or mask"));
}

function say(text, kind) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = `message ${kind || ""}`;
}

function changed() {
  say("not saved yet", "pending");
  render();
}

function pickTool(tool) {
  setup.tool = tool;
  setup.drawing = null;
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.classList.toggle("active", button.dataset.tool === setup.tool);
  }
  const hints = {
    line: "Press where the line starts, drag, release where it ends. The arrow points the way that counts as 'in'.",
    zone: "Click each corner of the zone; click the first corner again (or double-click) to close it. Esc cancels.",
    mask: "Click each corner of the mask; click the first corner again (or double-click) to close it. Esc cancels.",
  };
  document.getElementById("hint").textContent = hints[setup.tool] || "Pick a tool, then draw on the picture.";
  render();
}

function closePolygon() {
  const drawing = setup.drawing;
  if (!drawing || drawing.points.length < 3) return;
  if (drawing.kind === "zone") {
    const input = document.getElementById("zone-name");
    setup.shape.zones.push({ name: input.value.trim(), polygon: drawing.points });
    input.value = `zone${setup.shape.zones.length + 1}`;
  } else {
    setup.shape.masks.push(drawing.points);
  }
  setup.drawing = null;
  changed();
}

function onMouseDown(event) {
  if (setup.tool !== "line" || event.button !== 0) return;
  const point = toFraction(event);
  setup.drawing = { kind: "line", start: point, end: null };
  event.preventDefault();
}

function onMouseMove(event) {
  const drawing = setup.drawing;
  if (!drawing) return;
  if (drawing.kind === "line") drawing.end = toFraction(event);
  else drawing.hover = toFraction(event);
  render();
}

function onMouseUp(event) {
  const drawing = setup.drawing;
  if (!drawing || drawing.kind !== "line") return;
  drawing.end = toFraction(event);
  const [x1, y1] = pixels(drawing.start);
  const [x2, y2] = pixels(drawing.end);
  setup.drawing = null;
  if (Math.hypot(x2 - x1, y2 - y1) >= 10) {
    setup.shape.line = { start: drawing.start, end: drawing.end };
    changed();
  } else {
    render();
  }
}

function onClick(event) {
  if (setup.tool !== "zone" && setup.tool !== "mask") return;
  const point = toFraction(event);
  if (!setup.drawing) setup.drawing = { kind: setup.tool, points: [] };
  const points = setup.drawing.points;
  const last = points[points.length - 1];
  if (last && Math.hypot(...pixels(last).map((value, axis) => value - pixels(point)[axis])) < 3) return; // a double-click
  if (points.length >= 3) {
    const [fx, fy] = pixels(points[0]);
    const [px, py] = pixels(point);
    const overlay = document.getElementById("overlay");
    const scale = frameSize()[0] / overlay.getBoundingClientRect().width; // frame pixels per screen pixel
    if (Math.hypot(px - fx, py - fy) <= CLOSE_PX * scale) {
      closePolygon();
      return;
    }
  }
  points.push(point);
  render();
}

function flip() {
  const line = setup.shape.line;
  if (!line) return;
  setup.shape.line = { start: line.end, end: line.start };
  changed();
}

async function save() {
  const response = await fetch(`/api/cameras/${encodeURIComponent(setup.camera)}/setup`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(setup.shape),
  });
  const answer = await response.json();
  if (!response.ok) {
    say(answer.error, "error");
    return;
  }
  const camera = current();
  Object.assign(camera, { line: answer.line, zones: answer.zones, masks: answer.masks });
  setup.saved = JSON.parse(JSON.stringify(setup.shape));
  say(`Saved: ${answer.note}`, "ok");
}

function revert() {
  setup.shape = JSON.parse(JSON.stringify(setup.saved));
  setup.drawing = null;
  say("");
  render();
}

async function loadStill() {
  const image = document.getElementById("still");
  const response = await fetch(`/api/cameras/${encodeURIComponent(setup.camera)}/still.jpg`, { cache: "no-store" });
  if (!response.ok) {
    say((await response.json()).error, "error");
    return;
  }
  const blob = await response.blob();
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(blob);
  await image.decode();
  const camera = current();
  camera.width = camera.width || image.naturalWidth;
  camera.height = camera.height || image.naturalHeight;
  document.getElementById("frame").dataset.ready = "true";
  render();
}

function figureRow(table, name, value) {
  const row = htmlElement("tr");
  row.append(htmlElement("th", {}, name), htmlElement("td", {}, value));
  table.appendChild(row);
}

async function loadFigures() {
  const figures = await getJSON(`/api/cameras/${encodeURIComponent(setup.camera)}/figures`);
  setup.figures = figures;
  const table = document.getElementById("figures");
  table.replaceChildren();
  figureRow(table, "watched", `${Math.round(figures.seconds)} s, ${figures.fps} fps, ${figures.width}×${figures.height}`);
  figureRow(table, "face width", figures.face_px.length
    ? `${figures.face_px[1]} px median (${figures.face_px[0]}–${figures.face_px[2]})` : "no face seen");
  figureRow(table, "people", String(figures.people));
  if (figures.line_in !== null) figureRow(table, "crossed in / out", `${figures.line_in} / ${figures.line_out}`);
  for (const [zone, people] of Object.entries(figures.zone_people)) figureRow(table, `in zone ${zone}`, String(people));
  figureRow(table, "fixtures found", String(figures.fixtures));
  const across = figures.line_across_path;
  if (across) figureRow(table, "proposed line", `${JSON.stringify(across.start)} → ${JSON.stringify(across.end)} (in: ${across.in})`);
  document.getElementById("use-line").disabled = !across;
  document.getElementById("use-masks").disabled = !figures.proposed_masks.length;
  const advice = document.getElementById("advice");
  advice.replaceChildren(...figures.advice.map((line) => htmlElement("li", {}, line)));
}

async function selectCamera(id) {
  setup.camera = id;
  const camera = current();
  setup.shape = { line: camera.line, zones: camera.zones, masks: camera.masks };
  setup.shape = JSON.parse(JSON.stringify(setup.shape));
  setup.saved = JSON.parse(JSON.stringify(setup.shape));
  setup.drawing = null;
  cameraTabs(document.getElementById("camera-tabs"), setup.cameras.map((one) => one.id), id, selectCamera, false);
  say(camera.not_saved_because ? `Changes apply until the analyzer stops: ${camera.not_saved_because}` :
    `Changes are saved to ${camera.saved_to}`, "info");
  render();
  await Promise.all([loadStill(), loadFigures()]);
}

async function start() {
  setup.cameras = await getJSON("/api/cameras");
  if (setup.cameras.length && !setup.cameras[0].faces_blurred) {
    const privacy = document.getElementById("privacy");
    privacy.textContent = "FACES NOT BLURRED (web.show_faces_in_stills is on)";
    privacy.className = "live warn";
  }
  const overlay = document.getElementById("overlay");
  overlay.addEventListener("mousedown", onMouseDown);
  overlay.addEventListener("mousemove", onMouseMove);
  overlay.addEventListener("mouseup", onMouseUp);
  overlay.addEventListener("click", onClick);
  overlay.addEventListener("dblclick", closePolygon);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { if (setup.drawing) { setup.drawing = null; render(); } else pickTool(null); }
    if (event.key === "Enter") closePolygon();
  });
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => pickTool(button.dataset.tool));
  }
  document.getElementById("flip").addEventListener("click", flip);
  document.getElementById("save").addEventListener("click", () => save().catch((error) => say(error.message, "error")));
  document.getElementById("revert").addEventListener("click", revert);
  document.getElementById("new-still").addEventListener("click", () => loadStill());
  document.getElementById("refresh-figures").addEventListener("click", () => loadFigures());
  document.getElementById("use-line").addEventListener("click", () => {
    const across = setup.figures.line_across_path;
    setup.shape.line = { start: across.start, end: across.end };
    changed();
  });
  document.getElementById("use-masks").addEventListener("click", () => {
    setup.shape.masks.push(...setup.figures.proposed_masks);
    changed();
  });
  await selectCamera(setup.cameras[0].id);
  setInterval(() => loadFigures().catch(() => {}), 15000);
}

start().catch((error) => say(`cannot load the cameras: ${error.message}`, "error"));
