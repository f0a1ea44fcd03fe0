// A job's page: its stages as a graph with live rates, its workers, events and status
// changes, a tail of its output; kill, scale a stage, resubmit a worker.
// Pushed: the job's status and discovery streams (each change re-reads the job) and the
// output tail.  Read every few seconds: workers' metrics, which arrive with heartbeats.
import { ApiError, api, items, stream } from './api.js';
import { USER, ago, attempt, debounce, esc, num, state, table } from './ui.js';
import { graph } from './graph.js';

const METRICS_MS = 2000;
const TAIL_LINES = 200;
const STATUS_LINES = 40;
const RETRY_MS = 3000;  // a dropped status or discovery stream is opened again after this

export function jobPage(app, page, jobId) {
  const path = `/api/v1/jobs/${encodeURIComponent(jobId)}`;
  app.innerHTML = `
    <p><a href="#/">← overview</a></p>
    <section class="job-head"><h2>${esc(jobId)}</h2><span id="job-state"></span><span id="job-info" class="muted"></span>
      <button id="kill" class="danger">kill</button></section>
    <section><h3>Stages</h3><div id="graph"></div>
      <form id="scale-form">scale stage <select id="scale-stage"></select> to
        <input id="scale-count" type="number" min="0" max="100" value="1"> workers <button type="submit">scale</button></form></section>
    <section><h3>Workers</h3><div id="workers"></div>
      <details id="replaced-box"><summary>replaced and ended workers</summary><div id="replaced"></div></details></section>
    <section class="cols">
      <div><h3>Events</h3><div id="events"></div></div>
      <div><h3>Status changes</h3><ol id="status" class="log"></ol></div></section>
    <section><h3>Output</h3>
      <form id="tail-form">filter <input id="tail-filter" size="40" placeholder='value >= 50 and event == "click"'>
        sample every <input id="tail-sample" type="number" min="0" size="6" placeholder="0"> ms
        <button type="submit" id="tail-toggle">start tail</button> <span id="tail-count" class="muted"></span></form>
      <pre id="tail" class="log"></pre></section>`;
  const $ = (id) => document.getElementById(id);
  const rates = new Map();  // workerNumber -> {at, eventsIn, eventsOut, inRate, outRate}

  let eventsKept = true;  // false once the master answers 404: it keeps no job events

  // Re-read the job (and the pending reasons); with `changed` (a stream said something
  // changed) also its events and replaced workers, which change only then.
  async function refresh(changed = false) {
    let job;
    const [pending, events, archived] = await Promise.all([
      api('GET', '/api/v1/pendingWorkers').catch(() => []),
      changed && eventsKept ? api('GET', `${path}/events`).catch((err) => err) : null,
      changed ? api('GET', `${path}/archivedWorkers`).catch(() => null) : null,
    ]);
    if (events instanceof ApiError && events.status === 404) eventsKept = false;
    try { job = await api('GET', path); } catch (err) {
      if (page.open) $('workers').innerHTML = `<p class="bad">${esc(err.message)}</p>`;
      return;
    }
    if (!page.open) return;
    const meta = job.jobMetadata;
    $('job-state').innerHTML = state(meta.state);
    $('job-info').textContent = ` cluster ${meta.name} · by ${meta.user} · submitted ${ago(meta.submittedAt)}`;
    const workers = job.workerMetadataList || [];
    workers.forEach(measure);
    $('graph').innerHTML = graph(job.stageMetadataList || [], workers, rates);
    scaleChoices(job.stageMetadataList || []);
    const waiting = new Map(items(pending).filter((p) => p.jobId === jobId).map((p) => [p.workerId, p.reasons || []]));
    $('workers').innerHTML = renderWorkers(workers, waiting);
    if (events) $('events').innerHTML = renderEvents(events);
    if (archived) $('replaced').innerHTML = renderReplaced(items(archived));
  }
  const soon = debounce(() => refresh(true), 250);

  // Rates from two heartbeats' counters, kept until a newer heartbeat comes.
  function measure(w) {
    const m = w.metrics || {};
    const last = rates.get(w.workerNumber);
    if (!w.lastHeartbeatAt || m.eventsOut === undefined) return;
    if (!last) { rates.set(w.workerNumber, { at: w.lastHeartbeatAt, eventsIn: m.eventsIn, eventsOut: m.eventsOut }); return; }
    if (w.lastHeartbeatAt <= last.at) return;
    const s = (w.lastHeartbeatAt - last.at) / 1000;
    rates.set(w.workerNumber, {
      at: w.lastHeartbeatAt, eventsIn: m.eventsIn, eventsOut: m.eventsOut,
      inRate: Math.max(0, (m.eventsIn - last.eventsIn) / s), outRate: Math.max(0, (m.eventsOut - last.eventsOut) / s),
    });
  }

  function renderWorkers(workers, waiting) {
    return table(['worker', 'index', 'stage', 'state', 'host:port', 'agent', 'in', 'out', 'out/s', 'dropped', 'queue',
      'cpu %', 'rss MB', 'heartbeat', 'reason', ''], workers.map((w) => {
      const m = w.metrics || {};
      const r = rates.get(w.workerNumber) || {};
      const why = waiting.get(w.workerId);
      const reason = why ? why.join('; ') : (w.reason !== 'Normal' ? w.reason : '');
      return `<tr data-worker="${esc(w.workerNumber)}" data-stage="${esc(w.stageNum)}" data-state="${esc(w.state)}">
        <td>${esc(w.workerNumber)}</td><td>${esc(w.workerIndex)}</td><td>${esc(w.stageNum)}</td><td>${state(w.state)}</td>
        <td class="mono">${esc(w.slave || '')}${w.ports && w.ports.length ? ':' + esc(w.ports[0]) : ''}</td>
        <td>${esc(w.agentId || '')}</td><td>${esc(m.eventsIn ?? '')}</td><td>${esc(m.eventsOut ?? '')}</td>
        <td>${num(r.outRate, 1)}</td><td>${esc(m.droppedEvents ?? '')}</td><td>${esc(m.queueDepth ?? '')}</td>
        <td>${num(m.cpuPercent, 1)}</td><td>${num(m.rssMB, 1)}</td><td>${ago(w.lastHeartbeatAt)}</td>
        <td class="reason">${esc(reason)}</td>
        <td><button data-resubmit="${esc(w.workerNumber)}">resubmit</button></td></tr>`;
    }), 'No workers.');
  }

  function scaleChoices(stages) {
    const select = $('scale-stage');
    const wanted = stages.map((s) => String(s.stageNum)).join(',');
    if (select.dataset.stages === wanted) return;
    select.dataset.stages = wanted;
    select.innerHTML = stages.map((s) => `<option value="${s.stageNum}">${s.stageNum}${s.scalable ? '' : ' (fixed)'}</option>`).join('');
    const scalable = stages.find((s) => s.scalable);
    if (scalable) select.value = String(scalable.stageNum);
  }

  // The job's status stream: a log of changes, and a re-read of the job on each.
  const statusLog = (s) => {
    const li = document.createElement('li');
    const at = new Date(s.timestamp || Date.now()).toLocaleTimeString();
    li.textContent = `${at} ${s.message || `${s.type} ${s.state}`}`;
    $('status').prepend(li);
    while ($('status').children.length > STATUS_LINES) $('status').lastChild.remove();
  };
  page.hold(stream(`/api/v1/jobStatusStream/${encodeURIComponent(jobId)}`, (s) => { statusLog(s); soon(); },
    (why) => { statusLog({ message: `status stream ended: ${why}` }); soon(); }, RETRY_MS));
  page.hold(stream(`/api/v1/jobDiscoveryStream/${encodeURIComponent(jobId)}`, soon, () => {}, RETRY_MS));

  let stopTail = null;
  function toggleTail() {
    if (stopTail) { stopTail(); stopTail = null; $('tail-toggle').textContent = 'start tail'; return; }
    const query = new URLSearchParams();
    if ($('tail-filter').value.trim()) query.set('filter', $('tail-filter').value.trim());
    if (Number($('tail-sample').value) > 0) query.set('sampleMSec', $('tail-sample').value);
    const tail = $('tail');
    tail.textContent = '';
    let count = 0;
    stopTail = stream(`${path}/output?${query}`, (event) => {
      count += 1;
      $('tail-count').textContent = `${count} events`;
      tail.append(`${JSON.stringify(event)}\n`);
      while (tail.childNodes.length > TAIL_LINES) tail.firstChild.remove();
      tail.scrollTop = tail.scrollHeight;
    }, (why) => {
      $('tail-count').textContent = `${count} events; stream ended: ${why}`;
      stopTail = null;
      $('tail-toggle').textContent = 'start tail';
    });
    $('tail-toggle').textContent = 'stop tail';
  }
  page.hold(() => { if (stopTail) stopTail(); });

  page.on(app, 'submit', async (e) => {
    e.preventDefault();
    if (e.target.id === 'tail-form') return toggleTail();
    if (e.target.id === 'scale-form') {
      const stage = Number($('scale-stage').value);
      const count = Number($('scale-count').value);
      await attempt(`scale stage ${stage} to ${count}`, () => api('POST', `${path}/actions/scaleStage`,
        { JobId: jobId, StageNumber: stage, NumWorkers: count, User: USER, Reason: 'scaled from the web UI' }));
      soon();
    }
  });
  page.on(app, 'click', async (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    if (b.id === 'kill') {
      await attempt(`kill ${jobId}`, () => api('DELETE', `${path}?user=${USER}&reason=${encodeURIComponent('killed from the web UI')}`));
      soon();
    } else if (b.dataset.resubmit) {
      await attempt(`resubmit worker ${b.dataset.resubmit}`, () => api('POST', `${path}/actions/resubmitWorker`,
        { workerNumber: Number(b.dataset.resubmit), user: USER, reason: 'resubmitted from the web UI' }));
      soon();
    }
  });

  refresh(true);
  page.every(METRICS_MS, () => refresh(false));
}

function renderReplaced(workers) {
  return table(['worker', 'index', 'stage', 'state', 'host', 'reason', 'resubmit of', 'ended'], workers.slice(-50).reverse().map((w) =>
    `<tr data-archived="${esc(w.workerNumber)}"><td>${esc(w.workerNumber)}</td><td>${esc(w.workerIndex)}</td><td>${esc(w.stageNum)}</td>
      <td>${state(w.state)}</td><td>${esc(w.slave || '')}</td><td>${esc(w.reason)}</td><td>${esc(w.resubmitOf || '')}</td>
      <td>${ago(w.completedAt)}</td></tr>`), 'None yet.');
}

// The events endpoint's answer (Mantis' list envelope of {at or time, type or kind, message}) as a list.
export function renderEvents(answer) {
  if (answer instanceof ApiError && answer.status === 404) return '<p class="muted empty">no events</p>';
  if (answer instanceof Error) return `<p class="bad">${esc(answer.message)}</p>`;
  const events = items(answer).slice(-50).reverse();
  if (!events.length) return '<p class="muted empty">no events</p>';
  return `<ol class="log">${events.map((e) => {
    const at = e.time ?? e.timestamp ?? e.at;
    const when = at ? new Date(at > 1e12 ? at : at * 1000).toLocaleTimeString() : '';
    const kind = e.kind ?? e.type ?? e.eventType ?? '';
    const message = e.message ?? e.description ?? JSON.stringify(e);
    return `<li>${esc(when)} <b>${esc(kind)}</b> ${esc(message)}</li>`;
  }).join('')}</ol>`;
}
