// The overview: clusters (create, submit, enable/disable), active jobs, pending workers
// and agents (disable, enable, drain).  Lists refresh when a shown job's status stream
// reports a change, and every few seconds for what has no stream (agents, pending).
import { api, items, stream } from './api.js';
import { USER, ago, attempt, chips, debounce, esc, num, state, table } from './ui.js';

const REFRESH_MS = 5000;
// Status streams held open at once: a browser gives a host about six connections.
const MAX_STREAMS = 3;

const SAMPLE = {
  name: 'clicks', url: 'mantis.examples.synthetic:job', version: '1',
  parameters: [{ name: 'rate', value: 50 }],
  schedulingInfo: { stages: { 1: { numberOfInstances: 1, machineDefinition: { cpuCores: 0.5, memoryMB: 128 } } } },
  jobSla: { durationType: 'Perpetual' },
};

export function overview(app, page) {
  app.innerHTML = `
    <section><h2>Clusters</h2><div id="clusters"></div>
      <details id="create"><summary>New cluster</summary>
        <form id="create-form">
          <textarea id="definition" rows="10" spellcheck="false">${esc(JSON.stringify(SAMPLE, null, 1))}</textarea>
          <button type="submit" id="create-cluster">create</button>
        </form>
      </details></section>
    <section><h2>Jobs</h2><div id="jobs"></div></section>
    <section><h2>Pending workers</h2><div id="pending"></div></section>
    <section><h2>Agents</h2><div id="agents"></div></section>`;
  const streams = new Map();  // jobId -> close

  async function refresh() {
    const [clusters, jobs, pending, agents] = await Promise.all([
      api('GET', '/api/v1/jobClusters'), api('GET', '/api/v1/jobs?compact=true'),
      api('GET', '/api/v1/pendingWorkers'), api('GET', '/api/v1/agents'),
    ].map((p) => p.catch((err) => ({ error: err.message }))));
    if (!page.open) return;
    show('clusters', clusters, renderClusters);
    show('jobs', jobs, renderJobs);
    show('pending', pending, renderPending);
    show('agents', agents, renderAgents);
    follow(items(jobs).slice().sort((a, b) => a.submittedAt - b.submittedAt).map((j) => j.jobId));
  }
  const soon = debounce(refresh, 300);

  // Keep a status stream open on the newest active jobs: a change there refreshes the lists.
  function follow(jobIds) {
    const wanted = new Set(jobIds.slice(-MAX_STREAMS));
    for (const [id, close] of streams) if (!wanted.has(id)) { close(); streams.delete(id); }
    for (const id of wanted) {
      if (streams.has(id)) continue;
      streams.set(id, stream(`/api/v1/jobStatusStream/${encodeURIComponent(id)}`, soon, () => streams.delete(id)));
    }
  }
  page.hold(() => streams.forEach((close) => close()));

  page.on(app, 'submit', async (e) => {
    if (e.target.id !== 'create-form') return;
    e.preventDefault();
    let definition;
    try { definition = JSON.parse(document.getElementById('definition').value); } catch (err) {
      return attempt('create cluster', () => { throw err; });
    }
    if (await attempt(`create ${definition.name}`, () => api('POST', '/api/v1/jobClusters', definition))) refresh();
  });

  page.on(app, 'click', async (e) => {
    const b = e.target.closest('button[data-act]');
    if (!b) return;
    const { act, name, agent } = b.dataset;
    if (act === 'submit') {
      const job = await attempt(`submit ${name}`,
        () => api('POST', `/api/v1/jobClusters/${encodeURIComponent(name)}/jobs`, { name, user: USER }));
      if (job) location.hash = `#/job/${encodeURIComponent(job.jobMetadata.jobId)}`;
      return;
    }
    if (act === 'enableCluster' || act === 'disableCluster') {
      await attempt(`${act} ${name}`,
        () => api('POST', `/api/v1/jobClusters/${encodeURIComponent(name)}/actions/${act}`, { name, user: USER }));
    } else if (agent) {
      await attempt(`${act} ${agent}`,
        () => api('POST', `/api/v1/agents/${encodeURIComponent(agent)}/actions/${act}`, { user: USER }));
    }
    refresh();
  });

  refresh();
  page.every(REFRESH_MS, refresh);
}

function show(id, answer, render) {
  const el = document.getElementById(id);
  if (el) el.innerHTML = answer && answer.error ? `<p class="bad">${esc(answer.error)}</p>` : render(items(answer));
}

const jobLink = (id) => `<a href="#/job/${encodeURIComponent(id)}">${esc(id)}</a>`;

function renderClusters(clusters) {
  return table(['cluster', 'artifact', 'version', 'stages', 'active jobs', '', ''], clusters.map((c) => {
    const stages = Object.entries((c.schedulingInfo || {}).stages || {})
      .map(([n, s]) => `${n}×${s.numberOfInstances}`).join(' ');
    const toggle = c.disabled ? 'enableCluster' : 'disableCluster';
    return `<tr data-cluster="${esc(c.name)}"><td>${esc(c.name)}${c.disabled ? ' <span class="chip bad">disabled</span>' : ''}</td>
      <td class="mono">${esc(c.url)}</td><td>${esc(c.latestVersion)}</td><td>${esc(stages)}</td>
      <td>${(c.activeJobs || []).map(jobLink).join(' ')}</td>
      <td><button data-act="submit" data-name="${esc(c.name)}">submit</button></td>
      <td><button data-act="${toggle}" data-name="${esc(c.name)}">${c.disabled ? 'enable' : 'disable'}</button></td></tr>`;
  }), 'No clusters yet: create one below.');
}

function renderJobs(jobs) {
  return table(['job', 'state', 'stages', 'workers', 'cpus', 'memory MB', 'submitted'], jobs.map((j) =>
    `<tr data-job="${esc(j.jobId)}"><td>${jobLink(j.jobId)}</td><td>${state(j.state)}</td><td>${esc(j.numStages)}</td>
      <td>${chips(j.statesSummary)}</td><td>${num(j.totCPUs, 1)}</td><td>${num(j.totMemory)}</td>
      <td>${ago(j.submittedAt)}</td></tr>`), 'No active jobs.');
}

function renderPending(pending) {
  return table(['worker', 'job', 'stage', 'why it waits'], pending.map((p) =>
    `<tr class="pending" data-worker="${esc(p.workerId)}"><td>${esc(p.workerId)}</td><td>${jobLink(p.jobId)}</td>
      <td>${esc(p.stage)}</td><td class="reason">${esc((p.reasons || []).join('; '))}</td></tr>`), 'No worker is waiting.');
}

const used = (u, t, unit = '') => `${num(u, 1)} / ${num(t, 1)}${unit}`;

function renderAgents(agents) {
  return table(['agent', 'host', 'cpus', 'memory MB', 'ports used', 'attributes', 'workers', 'heartbeat', ''], agents.map((a) => {
    const total = a.total || {};
    const use = a.used || {};
    const attrs = Object.entries(a.attributes || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    const workers = (a.workers || []).map((w) => `<a href="#/job/${encodeURIComponent(String(w).split('/')[0])}">${esc(w)}</a>`);
    const toggle = a.disabled ? 'enable' : 'disable';
    return `<tr data-agent="${esc(a.agentId)}"><td>${esc(a.agentId)}${a.disabled ? ' <span class="chip bad">disabled</span>' : ''}</td>
      <td>${esc(a.hostname)}</td><td>${used(use.cpus, total.cpus)}</td><td>${used(use.memMB, total.memMB)}</td>
      <td>${esc((use.ports || []).length)}</td><td class="mono">${esc(attrs)}</td><td>${workers.join(' ')}</td>
      <td>${num(a.lastHeartbeatAgoS, 1)}s ago</td>
      <td><button data-act="${toggle}" data-agent="${esc(a.agentId)}">${toggle}</button>
        <button data-act="drain" data-agent="${esc(a.agentId)}">drain</button></td></tr>`;
  }), 'No agent has registered.');
}
