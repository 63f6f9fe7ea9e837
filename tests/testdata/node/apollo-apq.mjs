// Apollo Client with its persisted-queries link in front of HttpLink, for the Go tests:
//
//   node apollo-apq.mjs <http-url> <runs>
//
// Each run is a fresh ApolloClient (empty cache) asking the same query. It prints one JSON
// line per run: {"run": n, "data": what the client returned, "requests": what went over the
// wire, one {"hash": sha256 or null, "query": whether the query text was sent}}.
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';

const [url, runs] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

const query = gql`
  query ApqProducts {
    products(first: 3, orderBy: { field: NAME, direction: ASC }) {
      totalCount
      nodes { id name price { amount currency } }
    }
  }
`;

for (let run = 1; run <= Number(runs); run++) {
  const requests = [];
  // Records each request body as it leaves, then lets node's fetch send it.
  const recordingFetch = (input, init) => {
    const body = JSON.parse(init.body);
    requests.push({ hash: body.extensions?.persistedQuery?.sha256Hash ?? null, query: typeof body.query === 'string' });
    return fetch(input, init);
  };
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: new PersistedQueryLink({ sha256 }).concat(new HttpLink({ uri: url, fetch: recordingFetch })),
  });
  const result = await client.query({ query, fetchPolicy: 'network-only' });
  out({ run, data: result.data ?? null, error: result.error ? String(result.error) : null, requests });
  client.stop();
}
