// The live tail of the /logs page: follows /logs/stream (server-sent events) with the page's
// filters and puts each new line at the top of the table, newest first, keeping at most
// 500 rows. Lines are written as text, never as HTML. When the stream ends for good (the
// session or the permission is gone), it says so and stops; the browser reconnects by
// itself after a normal end, resuming at the last line received.
(() => {
  const table = document.getElementById('lines');
  const status = document.getElementById('tail-status');
  const url = table && table.dataset.stream;
  if (!url || !status || !window.EventSource) return;
  const body = table.tBodies[0];
  const MAX_ROWS = 500;
  // A reconnection resends its last line; lines already shown are dropped by their text.
  let seen = new Set();
  const stream = new EventSource(url);
  const stop = (text) => {
    stream.close();
    table.dataset.live = 'no';
    status.textContent = text;
  };
  stream.onopen = () => {
    table.dataset.live = 'yes';
    status.textContent = 'Live tail: new lines appear at the top.';
  };
  stream.addEventListener('line', (e) => {
    if (seen.has(e.data)) return;
    if (seen.size > 5000) seen = new Set();
    seen.add(e.data);
    const line = JSON.parse(e.data);
    const row = document.createElement('tr');
    row.className = line.level;
    for (const text of [line.time, line.level, line.source, line.message]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.appendChild(cell);
    }
    const cell = document.createElement('td');
    const code = document.createElement('code');
    code.textContent = line.fields;
    cell.appendChild(code);
    row.appendChild(cell);
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  });
  stream.addEventListener('end', (e) => stop(e.data));
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) {
      stop('Live tail stopped: the server refused to go on (signed out?). Reload the page to try again.');
    } else {
      table.dataset.live = 'no';
      status.textContent = 'Live tail: reconnecting…';
    }
  };
})();
