// Shared by both pages: SVG drawing and JSON requests. No framework, nothing loaded from elsewhere.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLOURS = { female: "#d9577a", male: "#3b7dd8", unknown: "#a0a4ab", in: "#2f9e62", out: "#e08a2b", bar: "#5566c9" };

function svgElement(tag, attributes, text) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function htmlElement(tag, attributes, text) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return response.json();
}

// Bars of one or more stacked series over `labels`; each bar carries data-label and data-value for readers and tests.
function barChart(svg, labels, series, options = {}) {
  svg.replaceChildren();
  const [width, height] = svg.getAttribute("viewBox").split(" ").slice(2).map(Number);
  const bottom = height - 22, top = 16, left = 4;
  const totals = labels.map((_, index) => series.reduce((sum, one) => sum + one.values[index], 0));
  const highest = Math.max(1, ...totals);
  const step = (width - left) / labels.length;
  const barWidth = Math.max(step * 0.72, 2);
  const every = options.labelEvery || 1;
  svg.appendChild(svgElement("line", { x1: left, x2: width, y1: bottom, y2: bottom, class: "axis" }));
  labels.forEach((label, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    const group = svgElement("g", { "data-label": label, "data-value": totals[index], class: "bar" });
    let y = bottom;
    for (const one of series) {
      const value = one.values[index];
      if (!value) continue;
      const barHeight = (value / highest) * (bottom - top);
      y -= barHeight;
      const rect = svgElement("rect", { x, y, width: barWidth, height: barHeight, fill: one.colour, rx: 2 });
      rect.appendChild(svgElement("title", {}, `${label}: ${value} ${one.name}`));
      group.appendChild(rect);
    }
    if (totals[index]) group.appendChild(svgElement("text", { x: x + barWidth / 2, y: y - 3, class: "value" }, totals[index]));
    if (index % every === 0) group.appendChild(svgElement("text", { x: x + barWidth / 2, y: height - 6, class: "tick" }, label));
    svg.appendChild(group);
  });
  if (series.length > 1 && options.legend !== false) {
    let x = left;
    for (const one of series) {
      svg.appendChild(svgElement("rect", { x, y: 2, width: 10, height: 10, fill: one.colour }));
      svg.appendChild(svgElement("text", { x: x + 14, y: 11, class: "legend" }, one.name));
      x += 24 + one.name.length * 6.5;
    }
  }
}

function cameraTabs(container, cameras, selected, onSelect, withAll) {
  container.replaceChildren();
  const ids = withAll ? ["all", ...cameras] : cameras;
  for (const id of ids) {
    const tab = htmlElement("button", { role: "tab", "data-camera": id, class: id === selected ? "tab active" : "tab" },
      id === "all" ? "All cameras" : id);
    tab.addEventListener("click", () => onSelect(id));
    container.appendChild(tab);
  }
}

function clockTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  return `${(seconds / 60).toFixed(seconds < 600 ? 1 : 0)} min`;
}
