// Apollo Client 4 (InMemoryCache, no configuration) against a live gateway: three queries on
// one session with different field sets. Prints JSON: the network calls made, the warnings
// Apollo printed (run with `node --conditions=development` for its development checks), and
// what each query answered. Arguments: the /graphql URL, a bearer token ("" for none), the ids.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const [uri, token, vc, ps] = process.argv.slice(2);
const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(args.map(String).join(" "));
}
let calls = 0;
const client = new ApolloClient({
  link: new HttpLink({
    uri,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    fetch: (...args) => { calls += 1; return fetch(...args); },
  }),
  cache: new InMemoryCache(),
});
const NAME = gql`query SessionName($vc: ID!, $ps: ID!) {
  proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { id name }
}`;
const STATUS = gql`query SessionStatus($vc: ID!, $ps: ID!) {
  proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { id status capabilities }
}`;
const variables = { vc, ps };
const name = await client.query({ query: NAME, variables });
const status = await client.query({ query: STATUS, variables });
const again = await client.query({ query: NAME, variables }); // cache-first
console.log(JSON.stringify({
  calls, warnings, name: name.data, status: status.data, again: again.data,
}));
