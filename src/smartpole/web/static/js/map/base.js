// The offline base map: district outlines and names, and the roads (GET /api/map/outlines),
// drawn on one CPU canvas under the poles. Redrawn when a move or zoom ends and shifted with
// the map while it moves, like a Leaflet pane; roads from ROAD_ZOOM on (or always, when few),
// clipped to the view. (Leaflet's own canvas renderer rasterises on the GPU canvas,
// which without a GPU is SwiftShader: at 100,000 poles a redraw of the roads took seconds.)
import { project } from "./poles.js";

// roads of a big city only from this zoom on; a district's few thousand points at any zoom
const ROAD_ZOOM = 15;
const ROAD_POINTS_ALWAYS = 5_000;
const TILE = 256;

/** [[lon, lat], ...] -> Float64Array [x0, y0, x1, y1, ...] in world fractions (0..1). */
function projected(points) {
  const out = new Float64Array(points.length * 2);
  points.forEach(([lon, lat], k) => {
    const [x, y] = project(lon, lat);
    out[2 * k] = x;
    out[2 * k + 1] = y;
  });
  return out;
}

export class BaseLayer {
  constructor(map, outlines) {
    this.map = map;
    this.districts = (outlines?.districts ?? []).map((d) => {
      const xy = projected(d.outline);
      let cx = 0;
      let cy = 0;
      for (let k = 0; k < xy.length; k += 2) {
        cx += xy[k];
        cy += xy[k + 1];
      }
      const n = Math.max(1, xy.length / 2);
      return { name: d.name, xy, cx: cx / n, cy: cy / n };
    });
    this.roads = (outlines?.roads ?? []).map((r) => projected(r.line));
    this.roadPoints = this.roads.reduce((sum, xy) => sum + xy.length / 2, 0);
    this.canvas = document.createElement("canvas");
    this.canvas.className = "base-canvas";
    map.getContainer().append(this.canvas);
    this.drawn = null; // {x, y, zoom} of the view last drawn
    this.redraw = () => this.draw();
    this.shift = () => this.follow();
    map.on("moveend zoomend resize viewreset", this.redraw);
    map.on("move", this.shift);
    this.draw();
  }

  /** While the map moves, shift the last drawing with it (a zoom redraws instead). */
  follow() {
    const origin = this.map.getPixelBounds().min;
    if (!this.drawn || this.drawn.zoom !== this.map.getZoom()) return;
    const dx = this.drawn.x - origin.x;
    const dy = this.drawn.y - origin.y;
    this.canvas.style.transform = `translate(${dx}px, ${dy}px)`;
  }

  draw() {
    const { map } = this;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    const zoom = map.getZoom();
    const scale = TILE * 2 ** zoom;
    const origin = map.getPixelBounds().min;
    const ox = origin.x;
    const oy = origin.y;
    if (this.canvas.width !== Math.round(size.x * ratio)) {
      this.canvas.width = Math.round(size.x * ratio);
      this.canvas.style.width = `${size.x}px`;
    }
    if (this.canvas.height !== Math.round(size.y * ratio)) {
      this.canvas.height = Math.round(size.y * ratio);
      this.canvas.style.height = `${size.y}px`;
    }
    this.canvas.style.transform = "";
    const ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    ctx.lineJoin = "round";
    for (const d of this.districts) {
      ctx.beginPath();
      for (let k = 0; k < d.xy.length; k += 2) {
        const x = d.xy[k] * scale - ox;
        const y = d.xy[k + 1] * scale - oy;
        if (k === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      }
      ctx.closePath();
      ctx.fillStyle = "#dfe7ee";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#7d93a8";
      ctx.stroke();
    }
    if (zoom >= ROAD_ZOOM || this.roadPoints <= ROAD_POINTS_ALWAYS) this.drawRoads(ctx, size, scale, ox, oy);
    ctx.font = "600 13px system-ui, 'Noto Sans CJK SC', sans-serif";
    ctx.textAlign = "center";
    ctx.fillStyle = "#5d6b79";
    for (const d of this.districts) ctx.fillText(d.name, d.cx * scale - ox, d.cy * scale - oy);
    this.drawn = { x: ox, y: oy, zoom };
  }

  drawRoads(ctx, size, scale, ox, oy) {
    const w = size.x;
    const h = size.y;
    ctx.beginPath();
    for (const xy of this.roads) {
      let px = xy[0] * scale - ox;
      let py = xy[1] * scale - oy;
      for (let k = 2; k < xy.length; k += 2) {
        const x = xy[k] * scale - ox;
        const y = xy[k + 1] * scale - oy;
        // a segment wholly on one side of the view is not drawn
        const out = (px < 0 && x < 0) || (px > w && x > w) || (py < 0 && y < 0) || (py > h && y > h);
        if (!out) {
          ctx.moveTo(px, py);
          ctx.lineTo(x, y);
        }
        px = x;
        py = y;
      }
    }
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
  }

  remove() {
    this.map.off("moveend zoomend resize viewreset", this.redraw);
    this.map.off("move", this.shift);
    this.canvas.remove();
  }
}
