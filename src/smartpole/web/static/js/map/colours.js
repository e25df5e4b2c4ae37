// Colours of the map: pole states, China's AQI bands (HJ 633-2012), noise, lamp level.
export const STATE_COLOURS = ["#2e9e5b", "#8a94a0", "#e0b000", "#f08c00", "#e0561b", "#c81e1e"];

// HJ 633-2012 table 4: upper bound of each band and its colour (RGB given by the standard)
export const AQI_BANDS = [
  [50, "#00e400", "aqi.1"],
  [100, "#ffff00", "aqi.2"],
  [150, "#ff7e00", "aqi.3"],
  [200, "#ff0000", "aqi.4"],
  [300, "#99004c", "aqi.5"],
  [Infinity, "#7e0023", "aqi.6"],
];
// GB 3096-2008 limits around roads: 55 dB(A) quiet areas, 70 dB(A) by trunk roads (day)
export const NOISE_BANDS = [
  [55, "#2e9e5b", "noise.1"],
  [65, "#e0b000", "noise.2"],
  [70, "#f08c00", "noise.3"],
  [Infinity, "#c81e1e", "noise.4"],
];
export const LAMP_BANDS = [
  [0, "#3b4148", "lamp.0"],
  [30, "#8a7a3a", "lamp.1"],
  [70, "#d9b84a", "lamp.2"],
  [Infinity, "#ffe066", "lamp.3"],
];
export const LAYER_BANDS = { aqi: AQI_BANDS, noise: NOISE_BANDS, lamp: LAMP_BANDS };
// a cluster shows its worst value: the highest AQI or noise, the brightest lamp would hide a
// dark one, so lamps show the darkest
export const LAYER_WORST = { aqi: Math.max, noise: Math.max, lamp: Math.min };
export const NO_VALUE = "#c4cad0";

export function bandColour(bands, value) {
  if (Number.isNaN(value)) return NO_VALUE;
  for (const [upper, colour] of bands) if (value <= upper) return colour;
  return bands[bands.length - 1][1];
}

/** Black or white text, whichever reads on the fill. */
export function inkOn(fill) {
  const n = parseInt(fill.slice(1), 16);
  const luma = 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255);
  return luma > 130 ? "#1c2733" : "#ffffff";
}
