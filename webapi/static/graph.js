// A job's stages as an SVG graph, source -> stage 1 -> ... -> sink, each stage with its
// workers' summed rates, drops and queue depth.
import { esc, num } from './ui.js';

const W = 190;
const H = 86;
const GAP = 46;
const END = 70;  // width of the source and sink nodes

// stages: the job's stageMetadataList; workers: its workerMetadataList; rates: workerNumber -> {inRate, outRate}.
export function graph(stages, workers, rates) {
  const width = 2 * END + stages.length * W + (stages.length + 1) * GAP;
  const y = 10;
  const parts = [];
  let x = 0;
  const node = (label, cls, w) => {
    parts.push(`<rect x="${x}" y="${y + H / 2 - 20}" width="${w}" height="40" rx="20" class="${cls}"/>`
      + `<text x="${x + w / 2}" y="${y + H / 2 + 5}" text-anchor="middle">${esc(label)}</text>`);
  };
  const arrow = () => {
    parts.push(`<line x1="${x}" y1="${y + H / 2}" x2="${x + GAP - 4}" y2="${y + H / 2}" class="edge" marker-end="url(#arrow)"/>`);
    x += GAP;
  };
  node('source', 'end', END);
  x += END;
  for (const stage of stages) {
    arrow();
    const mine = workers.filter((w) => w.stageNum === stage.stageNum);
    const started = mine.filter((w) => w.state === 'Started').length;
    const sum = (f) => mine.reduce((total, w) => total + (f(w) || 0), 0);
    const inRate = sum((w) => (rates.get(w.workerNumber) || {}).inRate);
    const outRate = sum((w) => (rates.get(w.workerNumber) || {}).outRate);
    const dropped = sum((w) => (w.metrics || {}).droppedEvents);
    const queue = sum((w) => (w.metrics || {}).queueDepth);
    const healthy = started === stage.numWorkers ? 'ok' : 'waiting';
    parts.push(`<g class="stage ${healthy}" data-stage="${stage.stageNum}">`
      + `<rect x="${x}" y="${y}" width="${W}" height="${H}" rx="6"/>`
      + `<text x="${x + 10}" y="${y + 20}" class="title">stage ${stage.stageNum} · ${started}/${stage.numWorkers} started</text>`
      + `<text x="${x + 10}" y="${y + 42}" class="rates">in ${num(inRate, 1)}/s · out ${num(outRate, 1)}/s</text>`
      + `<text x="${x + 10}" y="${y + 64}" class="drops">dropped ${dropped} · queue ${queue}</text></g>`);
    x += W;
  }
  arrow();
  node('sink', 'end', END);
  return `<svg class="graph" width="${width}" height="${H + 20}" viewBox="0 0 ${width} ${H + 20}">`
    + '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
    + '<path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
    + `${parts.join('')}</svg>`;
}
