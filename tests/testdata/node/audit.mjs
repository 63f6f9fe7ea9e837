// Runs graphql-http's server audit (GraphQL over HTTP conformance) against the URL given as
// the first argument and prints one JSON line: every result with its id, name, status
// ("ok", or "error" for a failed MUST, "warn" for a SHOULD, "notice" for a MAY) and reason.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql-url>');
  process.exit(2);
}
const results = await auditServer({ url });
console.log(
  JSON.stringify(
    results.map((r) => ({ id: r.id, name: r.name, status: r.status, reason: r.reason ?? '' })),
  ),
);
