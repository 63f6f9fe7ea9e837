// A client's operations, as an app using graphql-codegen's client preset writes them. The Go
// test generates ./gql from the server's schema next to this file and typechecks both.
import { graphql } from './gql';
import type { ProductPageQuery, OrderTrackingSubscription } from './gql/graphql';

export const ProductPage = graphql(`
  query ProductPage($first: Int!, $after: String) {
    products(first: $first, after: $after) {
      totalCount
      edges { cursor node { id name stock price { amount currency } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const OrderTracking = graphql(`
  subscription OrderTracking($id: ID!, $after: ID) {
    orderStatusChanged(orderId: $id, after: $after) { id status previousStatus at order { id status } }
  }
`);

export const PlaceOrder = graphql(`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      order { id status total { amount currency } }
      userErrors { field message code }
    }
  }
`);

// What the app renders: every field typed from the schema.
export function priceLabels(page: ProductPageQuery): string[] {
  return page.products.edges.map((e) => `${e.node.name}: ${e.node.price.amount / 100} ${e.node.price.currency}`);
}

export function statusLine(event: OrderTrackingSubscription): string {
  const e = event.orderStatusChanged;
  return `${e.order.id}: ${e.previousStatus ?? 'new'} -> ${e.status}`;
}
