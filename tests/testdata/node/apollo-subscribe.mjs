// Apollo Client with GraphQLWsLink (graphql-ws) for subscriptions and HttpLink for the rest,
// for the Go tests:
//
//   node apollo-subscribe.mjs <http-url> <ws-url> <token> <order-id> <after-event-id> <count>
//
// It subscribes to orderStatusChanged(orderId, after) and prints {"ready": true} once the
// socket is acknowledged, {"event": data} for each event, then, after <count> events,
// {"cached": the order as Apollo's normalized cache now shows it}. Errors print {"error": …}
// and exit 1.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
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
const isSubscription = ({ query }) => {
  const d = getMainDefinition(query);
  return d.kind === 'OperationDefinition' && d.operation === 'subscription';
};
const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: ApolloLink.split(isSubscription, new GraphQLWsLink(ws),
    new HttpLink({ uri: httpURL, headers: { Authorization: `Bearer ${token}` } })),
});

const subscription = gql`
  subscription OrderStatus($id: ID!, $after: ID) {
    orderStatusChanged(orderId: $id, after: $after) {
      id status previousStatus
      order { id status }
    }
  }
`;
const orderFragment = gql`fragment CachedOrder on Order { id status }`;

let seen = 0;
client.subscribe({ query: subscription, variables: { id: orderId, after } }).subscribe({
  next: (result) => {
    if (result.error) fail(result.error);
    out({ event: result.data });
    if (++seen < Number(count)) return;
    // What the app would render from the cache: the order normalized under its id.
    const cached = client.cache.readFragment({ id: client.cache.identify({ __typename: 'Order', id: orderId }), fragment: orderFragment });
    out({ cached });
    ws.dispose();
    client.stop();
    process.exit(0);
  },
  error: fail,
  complete: () => fail('subscription completed early'),
});
setTimeout(() => fail('timeout'), 25000);
