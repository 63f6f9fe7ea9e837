// Apollo Client against a server that runs only the operations of a persisted query manifest
// (PERSISTED_OPERATIONS), for the Go tests:
//
//   node apollo-trusted.mjs <http-url> <manifest.json>
//
// It asks trusted/Products.graphql three ways and prints one JSON line each: {"mode", "data":
// what the client returned, "code": the first error's extensions.code or null, "requests":
// what went over the wire, one {"hash": sha256Hash or null, "query": whether text was sent}}.
//   id        the persisted-query link with the manifest's ids (@apollo/persisted-query-lists)
//   text      a plain HttpLink sending the operation's text
//   unlisted  a plain HttpLink sending a query the manifest does not list
import { readFileSync } from 'node:fs';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { generatePersistedQueryIdsFromManifest } from '@apollo/persisted-query-lists';

const [url, manifestPath] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));

const listed = gql(readFileSync(new URL('trusted/Products.graphql', import.meta.url), 'utf8'));
const unlisted = gql`query NotInTheManifest { products(first: 1) { totalCount } }`;

async function ask(mode, query, persisted) {
  const requests = [];
  // Records each request body as it leaves, then lets node's fetch send it.
  const recordingFetch = (input, init) => {
    const body = JSON.parse(init.body);
    requests.push({ hash: body.extensions?.persistedQuery?.sha256Hash ?? null, query: typeof body.query === 'string' });
    return fetch(input, init);
  };
  let link = new HttpLink({ uri: url, fetch: recordingFetch });
  if (persisted) {
    link = createPersistedQueryLink(generatePersistedQueryIdsFromManifest({ loadManifest: () => manifest })).concat(link);
  }
  const client = new ApolloClient({ cache: new InMemoryCache(), link });
  let data = null, code = null;
  try {
    const result = await client.query({ query, variables: { first: 2 }, fetchPolicy: 'network-only', errorPolicy: 'all' });
    data = result.data ?? null;
    code = result.error?.errors?.[0]?.extensions?.code ?? (result.error ? String(result.error) : null);
  } catch (err) {
    code = err.errors?.[0]?.extensions?.code ?? String(err);
  }
  out({ mode, data, code, requests });
  client.stop();
}

await ask('id', listed, true);
await ask('text', listed, false);
await ask('unlisted', unlisted, false);
