import { defineCommand } from './command-spec.js';

export const openApiCommand = defineCommand({
  kind: 'command',
  name: 'openapi',
  operationId: 'getOpenApiDocument',
  summary: "Print the API's OpenAPI document",
  description: [
    'Prints the OpenAPI 3.1 document of the API that the CLI talks to: every',
    'route under /v1 with its parameters, body, responses and error codes.',
  ].join('\n'),
  arguments: [],
  options: {},
  async request() {
    return {};
  },
});
