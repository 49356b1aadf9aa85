// Test-harness proxy: adds the API key to every request and forwards it to the Worker, streaming
// bodies both ways (long-polls and SSE flow through unbuffered). The product itself keeps
// requiring the key; the conformance suite simply does not know how to send one.
import { createServer, request } from "node:http";

export function startAuthProxy(target, apiKey) {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const headers = { ...req.headers, host: upstream.host, authorization: `Bearer ${apiKey}` };
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    out.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    // A client that goes away (an SSE reader cancelling) ends the upstream request too.
    res.on("close", () => out.destroy());
    req.pipe(out);
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
