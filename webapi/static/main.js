// Entry point: the token setting and a hash router between the overview and a job's page.
import { api, token } from './api.js';
import { esc, Page, toast } from './ui.js';
import { overview } from './overview.js';
import { jobPage } from './job.js';

const app = document.getElementById('app');
let page = null;

function route() {
  if (page) page.close();
  page = new Page();
  const match = location.hash.match(/^#\/job\/(.+)$/);
  if (match) jobPage(app, page, decodeURIComponent(match[1]));
  else overview(app, page);
}

const tokenInput = document.getElementById('token');
tokenInput.value = token.get();
document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token.set(tokenInput.value.trim());
  toast(tokenInput.value.trim() ? 'token saved' : 'token cleared');
  route();
});

api('GET', '/api/v1/masterInfo')
  .then((m) => { document.getElementById('master').textContent = `${m.hostname}:${m.apiPort}`; })
  .catch((err) => { document.getElementById('master').innerHTML = `<span class="bad">${esc(err.message)}</span>`; });

window.addEventListener('hashchange', route);
route();
