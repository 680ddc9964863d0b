#!/usr/bin/env node
// A stand-in origin for trying the examples: `node examples/echo-origin.mjs [port…]` (default 9001
// and 9002) answers every request with what it received, as text: the request line, the headers and
// the body's length, plus a line with http://old.example.com links for examples/body-rewrite.
// Ctrl-C stops it. Not part of scriptgate; only node:http.
import http from 'node:http';

const ports = process.argv.slice(2).map(Number);
for (const port of ports.length ? ports : [9001, 9002]) {
  http
    .createServer((req, res) => {
      let bytes = 0;
      req.on('data', (c) => (bytes += c.length));
      req.on('end', () => {
        const lines = [`origin ${port}: ${req.method} ${req.url} HTTP/${req.httpVersion}`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i].toLowerCase()}: ${req.rawHeaders[i + 1]}`);
        lines.push(`body: ${bytes} bytes`, 'docs: http://old.example.com/guide and http://old.example.com/faq', '');
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', server: 'echo-origin', 'x-origin': String(port) });
        res.end(lines.join('\n'));
      });
    })
    .listen(port, '127.0.0.1', () => console.log(`echo origin on 127.0.0.1:${port}`));
}
