// The poles of GET /api/map/poles (columnar) as typed arrays: positions projected once to Web
// Mercator at zoom 0 (0..1), states that live updates overwrite in place, and the filter mask.
export const STATES = ["ok", "offline", "warning", "minor", "major", "critical"];

/** Web Mercator of lon/lat in degrees, as a fraction (0..1) of the world's width and height. */
export function project(lon, lat) {
  const sin = Math.sin((Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI) / 180);
  return [lon / 360 + 0.5, 0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)];
}

export class Poles {
  constructor(body) {
    const p = body.poles;
    const n = p.id.length;
    this.version = body.version;
    this.kinds = body.kinds;
    this.districts = body.districts;
    this.roads = body.roads;
    this.owners = body.owners;
    this.ownerSets = body.owner_sets;
    this.n = n;
    this.id = Int32Array.from(p.id);
    this.code = p.code;
    this.lon = new Float64Array(n);
    this.lat = new Float64Array(n);
    this.x = new Float64Array(n);
    this.y = new Float64Array(n);
    this.state = Uint8Array.from(p.state);
    this.district = Int32Array.from(p.district);
    this.road = Int32Array.from(p.road);
    this.kindMask = Uint32Array.from(p.kinds);
    this.ownerSet = Int32Array.from(p.owners);
    this.shown = new Uint8Array(n).fill(1);
    this.shownCount = n;
    this.value = new Float32Array(n).fill(Number.NaN);
    this.index = new Map();
    for (let i = 0; i < n; i++) {
      const lon = p.lon[i] / 1e6;
      const lat = p.lat[i] / 1e6;
      this.lon[i] = lon;
      this.lat[i] = lat;
      const [x, y] = project(lon, lat);
      this.x[i] = x;
      this.y[i] = y;
      this.index.set(p.id[i], i);
    }
  }

  /** Apply a `states` message ([[id, state], ...]); the number of poles of this map it changed. */
  applyStates(pairs) {
    let changed = 0;
    for (const [id, state] of pairs) {
      const i = this.index.get(id);
      if (i !== undefined && this.state[i] !== state) {
        this.state[i] = state;
        changed++;
      }
    }
    return changed;
  }

  /** Show only the poles that match every given filter (index into districts/roads/kinds/owners;
   * null = any). */
  filter({ district = null, road = null, kind = null, owner = null } = {}) {
    const kindBit = kind === null ? 0 : 1 << kind;
    const setsWithOwner =
      owner === null ? null : new Set(this.ownerSets.flatMap((set, k) => (set.includes(owner) ? [k] : [])));
    let count = 0;
    for (let i = 0; i < this.n; i++) {
      const ok =
        (district === null || this.district[i] === district) &&
        (road === null || this.road[i] === road) &&
        (kindBit === 0 || (this.kindMask[i] & kindBit) !== 0) &&
        (setsWithOwner === null || setsWithOwner.has(this.ownerSet[i]));
      this.shown[i] = ok ? 1 : 0;
      count += ok ? 1 : 0;
    }
    this.shownCount = count;
    return count;
  }

  /** How many shown poles are in each state (index: state code). */
  stateCounts() {
    const counts = new Array(STATES.length).fill(0);
    for (let i = 0; i < this.n; i++) if (this.shown[i]) counts[this.state[i]]++;
    return counts;
  }

  /** Values of a layer ({id: [...], value: [...]}); poles without one get NaN. */
  setValues(layer) {
    this.value.fill(Number.NaN);
    if (!layer) return;
    for (let k = 0; k < layer.id.length; k++) {
      const i = this.index.get(layer.id[k]);
      if (i !== undefined) this.value[i] = layer.value[k];
    }
  }

  /** The pole whose code is `code` (any case), else the first whose code starts with it. */
  find(code) {
    const wanted = code.trim().toLowerCase();
    if (!wanted) return -1;
    let prefix = -1;
    for (let i = 0; i < this.n; i++) {
      const c = this.code[i].toLowerCase();
      if (c === wanted) return i;
      if (prefix < 0 && c.startsWith(wanted)) prefix = i;
    }
    return prefix;
  }

  /** The kinds of pole i, by name. */
  kindsOf(i) {
    return this.kinds.filter((_, k) => ((this.kindMask[i] >>> k) & 1) === 1);
  }

  /** The owner tenants of pole i, by name. */
  ownersOf(i) {
    return (this.ownerSets[this.ownerSet[i]] ?? []).map((k) => this.owners[k]);
  }

  /** [[south, west], [north, east]] of the shown poles (null when none). */
  bounds() {
    let s = 90, w = 180, n = -90, e = -180;
    for (let i = 0; i < this.n; i++) {
      if (!this.shown[i]) continue;
      s = Math.min(s, this.lat[i]);
      n = Math.max(n, this.lat[i]);
      w = Math.min(w, this.lon[i]);
      e = Math.max(e, this.lon[i]);
    }
    return s > n ? null : [[s, w], [n, e]];
  }
}
