// Prints the schema of a running server as SDL, from an introspection query, for the Go
// tests (graphql-codegen then reads it as a file):
//
//   node schema.mjs <http-url>
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql';

const [url] = process.argv.slice(2);
const res = await fetch(url, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ query: getIntrospectionQuery({ descriptions: true }) }),
});
const body = await res.json();
if (!res.ok || body.errors) {
  console.error(`introspection: HTTP ${res.status}`, JSON.stringify(body.errors));
  process.exit(1);
}
process.stdout.write(printSchema(buildClientSchema(body.data)) + '\n');
