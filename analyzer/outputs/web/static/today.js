// Today at a glance: the day's figures once, then each visit and the cameras' health pushed by the server.
"use strict";

const state = { today: null, health: {}, camera: "all" };

function figures() {
  if (!state.today) return null;
  return state.camera === "all" ? state.today.total : state.today.cameras[state.camera];
}

function renderHeadline(shown) {
  const totals = shown.totals;
  document.getElementById("visitors").textContent = totals.visitors;
  document.getElementById("date").textContent = state.today.date;
  const directions = document.getElementById("directions");
  directions.replaceChildren();
  if (shown.lined) {
    const crossed = totals.by_direction || {};
    for (const way of ["in", "out"]) {
      const chip = htmlElement("span", { class: `chip ${way}`, "data-direction": way, "data-count": crossed[way] || 0 });
      chip.textContent = `${way} ${crossed[way] || 0}`;
      directions.appendChild(chip);
    }
  }
  document.getElementById("dwell-median").textContent = `median time in view ${duration(shown.dwell.median_s)}`;
}

function renderGender(totals) {
  const box = document.getElementById("gender");
  box.replaceChildren();
  const counts = totals.by_gender;
  const all = Object.values(counts).reduce((sum, value) => sum + value, 0);
  const bar = htmlElement("div", { class: "split" });
  const legend = htmlElement("ul", { class: "legend-list" });
  for (const gender of ["female", "male", "unknown"]) {
    const count = counts[gender] || 0;
    const share = all ? (100 * count) / all : 0;
    if (count) {
      const part = htmlElement("span", { class: gender });
      part.style.width = `${share}%`;
      part.style.background = COLOURS[gender];
      bar.appendChild(part);
    }
    const item = htmlElement("li", { "data-gender": gender, "data-count": count });
    item.appendChild(htmlElement("i", { class: `swatch ${gender}` }));
    item.appendChild(document.createTextNode(`${gender} ${count}` + (all ? ` (${Math.round(share)}%)` : "")));
    legend.appendChild(item);
  }
  box.append(bar, legend);
}

function render() {
  const shown = figures();
  if (!shown) return;
  cameraTabs(document.getElementById("camera-tabs"), Object.keys(state.today.cameras), state.camera, (id) => {
    state.camera = id;
    render();
  }, true);
  renderHeadline(shown);
  const hours = [...Array(24).keys()].map((hour) => String(hour).padStart(2, "0"));
  const series = shown.lined
    ? [
        { name: "in", colour: COLOURS.in, values: shown.in_by_hour },
        { name: "out", colour: COLOURS.out, values: shown.out_by_hour },
        { name: "not crossed", colour: COLOURS.unknown,
          values: shown.by_hour.map((all, hour) => all - shown.in_by_hour[hour] - shown.out_by_hour[hour]) },
      ]
    : [{ name: "visitors", colour: COLOURS.bar, values: shown.by_hour }];
  barChart(document.getElementById("hours"), hours, series, { labelEvery: 2 });
  renderGender(shown.totals);
  const groups = Object.keys(shown.by_age_group);
  barChart(document.getElementById("ages"), groups, [{ name: "visitors", colour: COLOURS.bar,
    values: groups.map((group) => shown.by_age_group[group]) }]);
  const edges = shown.dwell.edges_s;
  const short = (seconds) => (seconds < 60 ? `${seconds}s` : `${seconds / 60}m`);
  const dwellLabels = edges.map((edge) => `<${short(edge)}`).concat([`${short(edges[edges.length - 1])}+`]);
  barChart(document.getElementById("dwell"), dwellLabels, [{ name: "visitors", colour: COLOURS.bar,
    values: shown.dwell.counts }]);
  const days = state.today.days;
  barChart(document.getElementById("days"), days.map((day) => day.date.slice(5)), [{ name: "visitors",
    colour: COLOURS.bar, values: days.map((day) => day.visitors) }]);
  renderLatest();
  renderHealth();
}

function renderLatest() {
  const list = document.getElementById("latest");
  list.replaceChildren();
  const shown = state.today.latest.filter((visit) => state.camera === "all" || visit.camera === state.camera);
  if (!shown.length) list.appendChild(htmlElement("li", { class: "empty" }, "no visitor yet today"));
  for (const visit of shown) {
    const item = htmlElement("li", { "data-camera": visit.camera });
    const gender = visit.face_covered ? "face covered" : visit.gender;
    const way = visit.direction && visit.direction !== "none" ? ` · ${visit.direction}` : "";
    item.appendChild(htmlElement("time", {}, clockTime(visit.end)));
    item.appendChild(htmlElement("i", { class: `swatch ${visit.gender}` }));
    item.appendChild(document.createTextNode(
      `${gender}, ${visit.age_group} · ${duration(visit.dwell_s)} in view${way} · ${visit.camera}`));
    list.appendChild(item);
  }
}

function renderHealth() {
  const box = document.getElementById("health");
  box.replaceChildren();
  for (const [camera, health] of Object.entries(state.health)) {
    if (state.camera !== "all" && camera !== state.camera) continue;
    const tile = htmlElement("div", { class: `health ${health.state}`, "data-camera": camera, "data-state": health.state });
    tile.appendChild(htmlElement("b", {}, camera));
    tile.appendChild(htmlElement("span", { class: "state" }, health.state));
    tile.appendChild(htmlElement("span", {}, `${health.fps} fps · ${health.frames_dropped} dropped · ` +
      `${health.reconnects} reconnects`));
    if (health.problem) tile.appendChild(htmlElement("span", { class: "problem" }, health.problem));
    box.appendChild(tile);
  }
}

async function start() {
  const today = await getJSON("/api/today");
  state.health = today.health;
  state.today = today;
  render();
  const live = document.getElementById("live");
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
  events.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live"; });
  events.addEventListener("visit", (event) => {
    const message = JSON.parse(event.data);
    state.today = message.today;
    render();
  });
  events.addEventListener("health", (event) => {
    state.health = JSON.parse(event.data);
    renderHealth();
  });
}

start().catch((error) => {
  document.getElementById("live").textContent = `cannot read the day: ${error.message}`;
});
