// Runs graphql-http's server audits against the GraphQL endpoint given as the first argument
// and prints one JSON array: each audit's id, name, status (ok, warn, notice, error) and reason.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
const results = [];
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  results.push({ id: audit.id, name: audit.name, status: result.status, reason: result.reason ?? null });
}
console.log(JSON.stringify(results));
