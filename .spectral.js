// Spectral ruleset for /openapi.json and docs/asyncapi.yaml: `npx spectral lint -r .spectral.js <file>`;
// test/integration/openapi-lint.test.ts runs it on both documents and fails on any finding.
// spectral:oas and spectral:asyncapi (recommended; each applies to its own format) and the OWASP
// API Security Top 10 ruleset (OpenAPI only), with the changes below, each with its reason
// (docs/api.md repeats them).
import owasp from '@stoplight/spectral-owasp-ruleset'
import { asyncapi, oas } from '@stoplight/spectral-rulesets'

// Bounds matter on what clients send (resource exhaustion); response schemas describe what the
// server sends, so the OWASP size and format rules are applied to request parameters and bodies only.
const requestSchemas = (type) => [
  `$.paths[*][*].parameters[?(@.schema && @.schema.type == "${type}")].schema`,
  `$.paths[*][*].requestBody.content[*].schema..[?(@ && @.type == "${type}")]`,
]
const onRequests = (name, type) => ({ ...owasp.rules[name], given: requestSchemas(type) })

export default {
  extends: [
    [oas, 'recommended'],
    [asyncapi, 'recommended'],
    [owasp, 'recommended'],
  ],
  rules: {
    'owasp:api4:2023-string-limit': onRequests('owasp:api4:2023-string-limit', 'string'),
    'owasp:api4:2023-integer-limit': onRequests('owasp:api4:2023-integer-limit', 'integer'),
    'owasp:api4:2023-integer-format': onRequests('owasp:api4:2023-integer-format', 'integer'),
    'owasp:api4:2023-array-limit': onRequests('owasp:api4:2023-array-limit', 'array'),
    // Free text (names, passwords, message text, opaque cursors) has no format or pattern to give;
    // ids carry `format: uuid`, enums their values.
    'owasp:api4:2023-string-restricted': 'off',
    // Only the abuse-prone operations are limited (register, login, createWsTicket, sendMessage):
    // they document 429 with Retry-After (kept on: owasp:api4:2023-rate-limit-retry-after) and the
    // fixed-window ones their RateLimit-* headers. Declaring 429 or RateLimit-* on operations that
    // never send them would have clients handle what cannot happen.
    'owasp:api4:2023-rate-limit': 'off',
    'owasp:api4:2023-rate-limit-responses-429': 'off',
    // A 500 is a bug, not part of the contract; every error, 500 included, is a Problem document.
    'owasp:api8:2023-define-error-responses-500': 'off',
    // The embedded local storage's presigned URLs carry their signature in the query, as S3's do:
    // a short-lived, single-object, single-operation credential made to be handed over as a URL.
    'owasp:api2:2023-no-api-keys-in-url': {
      ...owasp.rules['owasp:api2:2023-no-api-keys-in-url'],
      given: '$..[securitySchemes][?(@ && @.type == "apiKey" && @.name != "sig")].in',
    },
    // CORS headers are sent only when CORS_ORIGINS is configured and the request has an Origin.
    'owasp:api8:2023-define-cors-origin': 'off',
    // 422 is declared on every operation that takes input; one without any (GET /auth/me) has none to refuse.
    'owasp:api8:2023-define-error-validation': {
      ...owasp.rules['owasp:api8:2023-define-error-validation'],
      given: '$.paths[*][?(@.parameters || @.requestBody)].responses',
    },
    // 401 is declared on every operation that takes credentials; public ones (register, login) cannot
    // give it, and a presigned URL (signedUrl) that is wrong or expired is a 403, as on S3.
    'owasp:api8:2023-define-error-responses-401': {
      ...owasp.rules['owasp:api8:2023-define-error-responses-401'],
      given: '$.paths[*][?(@.security && @.security.length > 0 && !@.security[0].signedUrl)].responses',
    },
    // The project is private and has no public license text to link to, nor a public contact
    // address (the contact is named).
    'license-url': 'off',
    'asyncapi-info-contact-properties': 'off',
    // 3.1 is out; the generator writes 3.0.0, which the tools reading it (and this linter) support.
    'asyncapi-latest-version': 'off',
    // Not OWASP's, ours: a 503 tells the client when to retry, as a 429 does.
    'retry-after-on-503': {
      description: 'A 503 response declares Retry-After (outages are retried, never 500)',
      severity: 'warn',
      given: '$.paths[*][*].responses[503]',
      then: { field: 'headers.Retry-After', function: owasp.rules['owasp:api4:2023-rate-limit-retry-after'].then.function },
    },
    // Every error response is RFC 9457 problem+json (src/http/problem.ts), except /ready's 503,
    // whose body is the readiness report a load balancer reads.
  },
  overrides: [
    {
      // Signing up and signing in are how a client gets credentials: they cannot require them.
      files: [
        '**#/paths/~1api~1v1~1auth~1register',
        '**#/paths/~1api~1v1~1auth~1login',
        '**#/paths/~1api~1v1~1auth~1refresh',
        '**#/paths/~1api~1v1~1auth~1logout',
      ],
      rules: { 'owasp:api2:2023-write-restricted': 'off' },
    },
    {
      // Load balancers and orchestrators probe these without credentials.
      files: ['**#/paths/~1health', '**#/paths/~1ready'],
      rules: { 'owasp:api2:2023-read-restricted': 'off' },
    },
  ],
}
