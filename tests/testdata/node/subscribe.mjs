// Drives the reference graphql-ws client (graphql-transport-ws) for the Go tests:
//
//   node subscribe.mjs <url> <token|-> <count> <query> [variables-json]
//
// It subscribes once and prints one JSON line per happening: {"event": data} for each
// result, {"error": errors} when the operation fails, {"closed": code} when the socket
// closes, {"complete": true}. It exits after <count> events, or on an error or a close.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, count, query, variables] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: true,
  retryAttempts: 0,
  connectionParams: token === '-' ? {} : { Authorization: `Bearer ${token}` },
  on: {
    connected: () => out({ connected: true }),
    closed: (e) => {
      out({ closed: e.code, reason: e.reason });
      process.exit(0);
    },
  },
});

let seen = 0;
client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : undefined },
  {
    next: (result) => {
      if (result.errors) {
        out({ error: result.errors });
        return;
      }
      out({ event: result.data });
      if (++seen >= Number(count)) {
        client.dispose();
        process.exit(0);
      }
    },
    error: (err) => {
      out({ error: Array.isArray(err) ? err : { message: String(err?.message ?? err), code: err?.code } });
      process.exit(0);
    },
    complete: () => {
      out({ complete: true });
      process.exit(0);
    },
  },
);
setTimeout(() => {
  out({ timeout: true });
  process.exit(1);
}, 20000);
