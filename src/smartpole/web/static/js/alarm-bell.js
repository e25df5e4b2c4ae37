// The header's alarm bell: counts critical alarms raised since they were last looked at and
// plays a short tone for each (Web Audio, no file fetched). One per browser page: the shell
// starts it and puts bell.element in its header; the alarms page marks them seen.
import { stylesheet } from "./pages/ui.js";

let count = 0;
let audio = null;
let started = false;
const element = document.createElement("a");
element.href = "/alarms";
element.className = "alarm-bell";
element.dataset.testid = "alarm-badge";
element.hidden = true;

function show() {
  element.textContent = `⚠ ${count}`;
  element.dataset.count = String(count);
  element.hidden = count === 0;
}

/** A short two-note tone; silent until the browser allows sound (after a first click). */
export function beep() {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const now = audio.currentTime;
    for (const [i, freq] of [880, 660].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.15, now + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.001, now + i * 0.18 + 0.16);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.18);
      osc.stop(now + i * 0.18 + 0.17);
    }
    element.dataset.beeps = String(Number(element.dataset.beeps || 0) + 1);
  } catch (err) {
    console.warn("no sound", err);
  }
}

/** Listen for new critical alarms on a live connection (once per browser page). */
export function start(live) {
  if (started) return;
  started = true;
  stylesheet();
  live.on("alarm", (m) => {
    if (m.change === "raised" && m.alarm?.severity === "critical") {
      count += 1;
      show();
      beep();
    }
  });
  live.send({ op: "alarms" });
}

/** The alarms were looked at: the badge goes. */
export function seen() {
  count = 0;
  show();
}

/** The badge for the header: a link to /alarms with the count, hidden at zero. */
export const bell = { element, start, seen };
