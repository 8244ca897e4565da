// A compatible-mode client written against node's `ws` package, independent of the Python code:
// connect, send the decimation magnitude as text (as the Grasshopper/Bengesht client does), parse
// the JSON reply, check it is a list of [x, y, z] numbers, and print it back as JSON on stdout.
//
// usage: NODE_PATH=/usr/share/nodejs node compat_client.js ws://127.0.0.1:PORT/ MAGNITUDE
// exit codes: 0 ok, 1 connection error, 2 the reply is not a list of [x, y, z] numbers.
'use strict';
const WebSocket = require('ws');

const [url, magnitude] = process.argv.slice(2);
const ws = new WebSocket(url, { maxPayload: 1024 * 1024 * 1024, perMessageDeflate: false });
const timer = setTimeout(() => { console.error('no reply within 20 s'); process.exit(1); }, 20000);

ws.on('open', () => ws.send(String(magnitude)));
ws.on('message', (data, isBinary) => {
  clearTimeout(timer);
  const points = JSON.parse(data.toString('utf8'));
  const ok = Array.isArray(points) && points.every(
    (p) => Array.isArray(p) && p.length === 3 && p.every((x) => typeof x === 'number' && Number.isFinite(x)));
  if (!ok) {
    console.error('not a list of [x, y, z]: ' + data.toString('utf8').slice(0, 200));
    process.exit(2);
  }
  process.stdout.write(JSON.stringify({ binary: isBinary, count: points.length, points: points }));
  ws.close();
});
ws.on('close', () => process.exit(0));
ws.on('error', (err) => { console.error(err.message); process.exit(1); });
