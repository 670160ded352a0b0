// urql with its defaults (GET within the URL limit) through trusted documents: the
// persisted-queries exchange sends only the document's hash. `print` prints the document
// text urql hashes (for the test's manifest); `query` runs it and prints the result as JSON.
// Arguments: print | query, then for query: the /graphql URL, a bearer token, the ids.
import { Client, fetchExchange, gql, stringifyDocument } from "@urql/core";
import { persistedExchange } from "@urql/exchange-persisted";

const NAME = gql`query SessionName($vc: ID!, $ps: ID!) {
  proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { id name }
}`;
const [mode, url, token, vc, ps] = process.argv.slice(2);
if (mode === "print") {
  process.stdout.write(stringifyDocument(NAME));
} else {
  const sent = [];
  const client = new Client({
    url,
    exchanges: [persistedExchange({ enforcePersistedQueries: true }), fetchExchange],
    fetchOptions: { headers: token ? { authorization: `Bearer ${token}` } : {} },
    fetch: (input, init) => { sent.push({ url: String(input), method: init?.method ?? "GET" }); return fetch(input, init); },
  });
  const result = await client.query(NAME, { vc, ps }).toPromise();
  console.log(JSON.stringify({ sent, data: result.data ?? null, error: result.error ? String(result.error) : null }));
}
