import { z } from 'zod';
import { defineRoute } from './route.js';

export const getOpenApiDocument = defineRoute({
  method: 'GET',
  path: '/v1/openapi.json',
  operationId: 'getOpenApiDocument',
  summary: 'Read this OpenAPI document',
  description: 'The OpenAPI 3.1 document of the API, generated from the route declarations.',
  tags: ['meta'],
  response: {
    status: 200,
    description: 'The OpenAPI document.',
    schema: z
      .object({
        openapi: z.string(),
        info: z.object({ title: z.string(), version: z.string() }).loose(),
      })
      .loose(),
  },
  errors: [],
});
