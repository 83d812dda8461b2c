// The sharp peer of test/bench/bench_peers: a minimal HTTP server doing the
// bench's pipeline, as a sharp user would write it. POST /?width=W with an
// image: thumbnail to W wide (never enlarged, auto-oriented), vips_sharpen
// with libvips's defaults (sharp's own m1/m2 differ), JPEG quality 80.
// Node's cluster runs PROCS processes (default 2) on one port; the primary
// prints "ready PORT" once every process listens.
//   node server.js PORT
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const sharp = require('sharp');

const port = Number(process.argv[2]);
const procs = Number(process.env.PROCS || 2);

if (cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === procs) console.log(`ready ${port}`);
  });
  cluster.on('exit', (w, code) => console.error(`sharp worker exited: ${code}`));
  for (let i = 0; i < procs; i++) cluster.fork();
} else {
  http.createServer((req, res) => {
    const width = Number(new URL(req.url, 'http://x').searchParams.get('width'));
    const body = [];
    req.on('data', (c) => body.push(c));
    req.on('end', () => {
      sharp(Buffer.concat(body))
        .rotate()
        .resize({ width, withoutEnlargement: true })
        .sharpen({ sigma: 0.5, m1: 0, m2: 3 })
        .jpeg({ quality: 80 })
        .toBuffer()
        .then((out) => {
          res.writeHead(200, { 'content-type': 'image/jpeg' });
          res.end(out);
        }, (e) => {
          res.writeHead(400, { 'content-type': 'text/plain' });
          res.end(String(e));
        });
    });
  }).listen(port, '127.0.0.1');
}
