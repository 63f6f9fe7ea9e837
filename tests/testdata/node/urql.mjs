// urql (@urql/core) with subscriptionExchange over graphql-ws, for the Go tests:
//
//   node urql.mjs <http-url> <ws-url> <token> <order-id> <after-event-id> <count>
//
// It queries the order over HTTP and prints {"query": data}, then subscribes to
// orderStatusChanged(orderId, after) and prints {"ready": true} once the socket is
// acknowledged and {"event": data} for each of <count> events. Errors print {"error": …}
// and exit 1.
import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [httpURL, wsURL, token, orderId, after, count] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const fail = (e) => { out({ error: String(e?.message ?? e) }); process.exit(1); };

const ws = createClient({
  url: wsURL,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  connectionParams: { Authorization: `Bearer ${token}` },
  on: { connected: () => out({ ready: true }) },
});
const client = new Client({
  url: httpURL,
  fetchOptions: { headers: { Authorization: `Bearer ${token}` } },
  exchanges: [
    cacheExchange,
    fetchExchange,
    subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
      },
    }),
  ],
});

const order = await client.query(gql`
  query UrqlOrder($id: ID!) { order(id: $id) { id status items { quantity product { name } } } }
`, { id: orderId }).toPromise();
if (order.error) fail(order.error);
out({ query: order.data });

let seen = 0;
client
  .subscription(gql`
    subscription UrqlOrderStatus($id: ID!, $after: ID) {
      orderStatusChanged(orderId: $id, after: $after) { id status previousStatus order { id status } }
    }
  `, { id: orderId, after })
  .subscribe((result) => {
    if (result.error) fail(result.error);
    out({ event: result.data });
    if (++seen >= Number(count)) {
      ws.dispose();
      process.exit(0);
    }
  });
setTimeout(() => fail('timeout'), 25000);
