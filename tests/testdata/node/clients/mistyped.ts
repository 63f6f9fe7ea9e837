// A deliberate type error: price.amount is an Int. The Go test expects tsc to reject this
// file, which proves the generated types are really checked.
import type { ProductPageQuery } from './gql/graphql';

export function broken(page: ProductPageQuery): string {
  return page.products.edges[0].node.price.amount;
}
