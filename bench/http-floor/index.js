// The platform floor for HTTP appends: the least a Worker + per-stream Durable Object can do
// per POST (read the body, take the next sequence, insert one SQLite row, answer 204 with the
// new offset). No auth, no validation, no protocol: what workerd itself costs per append.
import { DurableObject } from "cloudflare:workers";

export class Stream extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, data BLOB)");
    this.seq = this.sql.exec("SELECT coalesce(max(seq), 0) AS seq FROM messages").one().seq;
  }

  async fetch(req) {
    const data = await req.arrayBuffer();
    const seq = ++this.seq;
    this.sql.exec("INSERT INTO messages (seq, data) VALUES (?, ?)", seq, data);
    return new Response(null, { status: 204, headers: { "stream-next-offset": String(seq) } });
  }
}

export default {
  fetch(req, env) {
    const path = new URL(req.url).pathname;
    if (path === "/health") return new Response("ok");
    return env.STREAM.get(env.STREAM.idFromName(path)).fetch(req);
  },
};
