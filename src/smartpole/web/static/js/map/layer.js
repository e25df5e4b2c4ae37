// The poles drawn on one canvas over a Leaflet map, clustered on a screen grid.
//
// Each frame bins the shown poles in view into cells of CELL pixels anchored to the world (so a
// cluster does not jump while panning); a cell draws as one circle with its count and its worst
// state (or worst layer value), a lone pole as a dot. It walks typed arrays only: at 100,000
// poles a frame costs a few milliseconds, and a live state change is one array write and a
// redraw, with no index to rebuild.
import { LAYER_BANDS, LAYER_WORST, STATE_COLOURS, bandColour, inkOn } from "./colours.js";

const CELL = 64;
const DOT = 5;
// from this zoom on, every pole is drawn on its own (poles stand ~30 m apart: 7 px at zoom 17)
const NO_CLUSTER_ZOOM = 17;
const TILE = 256;

export class PoleLayer {
  constructor(map, poles, { onDraw } = {}) {
    this.map = map;
    this.poles = poles;
    this.layer = null; // null: states; "aqi" | "noise" | "lamp"
    this.onDraw = onDraw;
    this.items = []; // what the last frame drew, for hit tests
    this.drawn = 0; // poles accounted for in the last frame
    this.pending = false;
    const container = map.getContainer();
    this.canvas = document.createElement("canvas");
    this.canvas.className = "pole-canvas";
    this.canvas.dataset.testid = "pole-canvas";
    container.append(this.canvas);
    this.redraw = () => this.schedule();
    map.on("move zoom resize viewreset", this.redraw);
    this.resize();
    map.on("resize", () => this.resize());
  }

  resize() {
    const size = this.map.getSize();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(size.x * ratio);
    this.canvas.height = Math.round(size.y * ratio);
    this.canvas.style.width = `${size.x}px`;
    this.canvas.style.height = `${size.y}px`;
    this.ratio = ratio;
    this.schedule();
  }

  setLayer(layer) {
    this.layer = layer;
    this.schedule();
  }

  /** Draw at the next animation frame (many changes in one frame draw once). */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { map, poles } = this;
    const size = map.getSize();
    const zoom = map.getZoom();
    const scale = TILE * 2 ** zoom;
    const origin = map.getPixelBounds().min;
    const ox = origin.x;
    const oy = origin.y;
    // a CPU canvas: without a GPU, an accelerated one rasterises through SwiftShader, slower
    const ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    const cluster = zoom < NO_CLUSTER_ZOOM;
    const items = [];
    let drawn = 0;
    if (cluster) drawn = this.drawClusters(ctx, size, scale, ox, oy, items);
    else drawn = this.drawPoles(ctx, size, scale, ox, oy, items);
    this.items = items;
    this.drawn = drawn;
    this.onDraw?.(drawn);
  }

  colourOf(i) {
    return this.layer
      ? bandColour(LAYER_BANDS[this.layer], this.poles.value[i])
      : STATE_COLOURS[this.poles.state[i]];
  }

  drawPoles(ctx, size, scale, ox, oy, items) {
    const { poles } = this;
    const dots = new Paths();
    let drawn = 0;
    for (let i = 0; i < poles.n; i++) {
      if (!poles.shown[i]) continue;
      const x = poles.x[i] * scale - ox;
      const y = poles.y[i] * scale - oy;
      if (x < -DOT || y < -DOT || x > size.x + DOT || y > size.y + DOT) continue;
      dots.circle(this.colourOf(i), x, y, DOT);
      items.push({ x, y, r: DOT + 3, count: 1, pole: i });
      drawn++;
    }
    dots.paint(ctx, 1.5);
    return drawn;
  }

  drawClusters(ctx, size, scale, ox, oy, items) {
    const { poles } = this;
    const cx0 = Math.floor(ox / CELL) - 1;
    const cy0 = Math.floor(oy / CELL) - 1;
    const cols = Math.ceil(size.x / CELL) + 3;
    const rows = Math.ceil(size.y / CELL) + 3;
    const cells = cols * rows;
    const count = new Int32Array(cells);
    const sumX = new Float64Array(cells);
    const sumY = new Float64Array(cells);
    const worst = new Uint8Array(cells);
    const first = new Int32Array(cells);
    const worstValue = new Float64Array(cells).fill(Number.NaN);
    const pick = this.layer ? LAYER_WORST[this.layer] : null;
    const minX = (cx0 * CELL) / scale;
    const maxX = ((cx0 + cols) * CELL) / scale;
    const minY = (cy0 * CELL) / scale;
    const maxY = ((cy0 + rows) * CELL) / scale;
    for (let i = 0; i < poles.n; i++) {
      if (!poles.shown[i]) continue;
      const wx = poles.x[i];
      const wy = poles.y[i];
      if (wx < minX || wx >= maxX || wy < minY || wy >= maxY) continue;
      const px = wx * scale;
      const py = wy * scale;
      const c = (Math.floor(px / CELL) - cx0) + (Math.floor(py / CELL) - cy0) * cols;
      if (count[c] === 0) first[c] = i;
      count[c]++;
      sumX[c] += px;
      sumY[c] += py;
      if (poles.state[i] > worst[c]) worst[c] = poles.state[i];
      if (pick) {
        const v = poles.value[i];
        if (!Number.isNaN(v)) worstValue[c] = Number.isNaN(worstValue[c]) ? v : pick(worstValue[c], v);
      }
    }
    let drawn = 0;
    const dots = new Paths();
    const circles = new Paths();
    const labels = [];
    for (let c = 0; c < cells; c++) {
      const n = count[c];
      if (n === 0) continue;
      const x = sumX[c] / n - ox;
      const y = sumY[c] / n - oy;
      drawn += n;
      if (n === 1) {
        const i = first[c];
        dots.circle(this.colourOf(i), x, y, DOT);
        items.push({ x, y, r: DOT + 3, count: 1, pole: i });
        continue;
      }
      const fill = this.layer
        ? bandColour(LAYER_BANDS[this.layer], worstValue[c])
        : STATE_COLOURS[worst[c]];
      const r = Math.min(26, 10 + 6 * Math.log10(n));
      circles.circle(fill, x, y, r);
      labels.push([n >= 10000 ? `${Math.round(n / 1000)}k` : String(n), x, y, fill]);
      items.push({ x, y, r, count: n, pole: first[c] });
    }
    circles.paint(ctx, 2);
    dots.paint(ctx, 1.5);
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const [text, x, y, fill] of labels) {
      ctx.fillStyle = inkOn(fill);
      ctx.fillText(text, x, y);
    }
    return drawn;
  }

  /** The drawn item (cluster or pole) under a container point, nearest first. */
  hit(point) {
    let best = null;
    let bestD = Infinity;
    for (const item of this.items) {
      const d = Math.hypot(item.x - point.x, item.y - point.y);
      if (d <= item.r && d < bestD) {
        best = item;
        bestD = d;
      }
    }
    return best;
  }

  remove() {
    this.map.off("move zoom resize viewreset", this.redraw);
    this.canvas.remove();
  }
}

/** Circles gathered by colour, painted with one fill and one stroke per colour: a canvas
 * draw call costs far more than a path segment, above all on a software-rendered canvas. */
class Paths {
  constructor() {
    this.byColour = new Map();
  }

  circle(colour, x, y, r) {
    let path = this.byColour.get(colour);
    if (!path) this.byColour.set(colour, (path = new Path2D()));
    path.moveTo(x + r, y);
    path.arc(x, y, r, 0, 2 * Math.PI);
  }

  paint(ctx, outline) {
    ctx.lineWidth = outline;
    ctx.strokeStyle = "#ffffff";
    for (const [colour, path] of this.byColour) {
      ctx.fillStyle = colour;
      ctx.fill(path);
      ctx.stroke(path);
    }
  }
}
