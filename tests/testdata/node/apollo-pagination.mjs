// Apollo Client's relayStylePagination() walking products(first:, after:) with fetchMore,
// for the Go tests:
//
//   node apollo-pagination.mjs <http-url> <page-size>
//
// It prints {"pages": fetches made, "ids": the product ids of the merged list as the cache
// shows it, "hasNextPage": the cached pageInfo's}.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { relayStylePagination } from '@apollo/client/utilities';
import { filter, firstValueFrom } from 'rxjs';

const [url, pageSize] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

const query = gql`
  query ProductPages($first: Int!, $after: String) {
    products(first: $first, after: $after) {
      edges { cursor node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;
const client = new ApolloClient({
  cache: new InMemoryCache({
    typePolicies: { Query: { fields: { products: relayStylePagination(['filter', 'orderBy']) } } },
  }),
  link: new HttpLink({ uri: url }),
});

const first = Number(pageSize);
const watched = client.watchQuery({ query, variables: { first } });
let result = await firstValueFrom(watched.pipe(filter((r) => !r.loading)));
if (result.error) throw result.error;
let pages = 1;
while (result.data.products.pageInfo.hasNextPage) {
  if (pages > 100) throw new Error('more than 100 pages: the cursor does not move');
  result = await watched.fetchMore({ variables: { first, after: result.data.products.pageInfo.endCursor } });
  pages++;
}
// The merged list as the cache holds it for the watched query.
const cached = client.readQuery({ query, variables: { first } });
out({
  pages,
  ids: cached.products.edges.map((e) => e.node.id),
  hasNextPage: cached.products.pageInfo.hasNextPage,
});
client.stop();
