// A Node.js HTTPS server and clients for the TLS capture test (tests/tls_capture.rs). Node links
// OpenSSL into its executable and feeds it through memory BIOs: no socket syscall happens inside
// SSL_read/SSL_write, unlike curl, Python or nginx.
//
//   node https.js serve PORT CERT KEY        HTTP/1.1 and HTTP/2 (ALPN); prints "ready" once listening
//   node https.js client PORT PATH...        one kept-alive HTTP/1.1 connection, requests in turn
//   node https.js parallel PORT N PATH       N HTTP/1.1 connections at once, each requesting PATH twice
//   node https.js h2 PORT PATH...            one HTTP/2 connection, all requests at once
// Clients print "done" when every response has been read.
'use strict';
const fs = require('fs');
const http2 = require('http2');
const https = require('https');

const [mode, port, ...rest] = process.argv.slice(2);

function serve([cert, key]) {
  const opts = { cert: fs.readFileSync(cert), key: fs.readFileSync(key), allowHTTP1: true };
  const server = http2.createSecureServer(opts, (req, res) => {
    req.resume();
    req.on('end', () => {
      const missing = req.url.startsWith('/missing');
      res.writeHead(missing ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(missing ? 'nope' : 'secret page ' + req.url);
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

function get(agent, path) {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: Number(port), path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
}

async function client(paths) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  for (const path of paths) await get(agent, path);
  agent.destroy();
}

async function parallel([n, path]) {
  const agents = Array.from({ length: Number(n) },
    () => new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false }));
  await Promise.all(agents.map(async (agent) => {
    await get(agent, path);
    await get(agent, path);
  }));
  agents.forEach((a) => a.destroy());
}

async function h2(paths) {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  await Promise.all(paths.map((path) => new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    req.on('response', () => {});
    req.resume();
    req.on('end', resolve);
    req.on('error', reject);
    req.end();
  })));
  session.close();
}

const clients = { client, parallel, h2 };
if (mode === 'serve') {
  serve(rest);
} else if (clients[mode]) {
  clients[mode](rest).then(() => console.log('done'), (e) => { console.error(e); process.exit(1); });
} else {
  console.error('usage: https.js serve PORT CERT KEY | client PORT PATH... | parallel PORT N PATH | h2 PORT PATH...');
  process.exit(2);
}
