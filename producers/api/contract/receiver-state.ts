import { z } from 'zod';
import { receiver } from './receivers.js';
import { defineRoute } from './route.js';

const receiverParams = z.object({
  id: z.string().meta({ description: 'Receiver id or name.' }),
});

export const disableReceiverBody = z
  .object({
    reason: z
      .string()
      .meta({
        description:
          'Why the receiver is disabled, for other operators. It is stored after "disabled by an operator: ".',
        minLength: 1,
        maxLength: 500,
        examples: ['endpoint moves to a new host'],
      })
      .optional(),
  })
  .strict();

export const disableReceiver = defineRoute({
  method: 'POST',
  path: '/v1/receivers/:id/disable',
  operationId: 'disableReceiver',
  summary: 'Disable a receiver',
  description:
    'The receiver gets no new deliveries, and its pending deliveries end as failed, without a request, when a worker next picks them up. A receiver that is already disabled keeps its time and reason. Receivers are also disabled automatically after failing for RECEIVER_DISABLE_AFTER_MS or on a 410 Gone response.',
  tags: ['receivers'],
  params: receiverParams,
  body: disableReceiverBody,
  bodyRequired: false,
  response: {
    status: 200,
    description: 'The receiver, with `time_disabled` and `disabled_reason` set.',
    schema: receiver,
  },
  errors: [404],
});

export const enableReceiver = defineRoute({
  method: 'POST',
  path: '/v1/receivers/:id/enable',
  operationId: 'enableReceiver',
  summary: 'Enable a disabled receiver',
  description:
    'Clears `time_disabled` and `disabled_reason` and restarts the failure tracking. Deliveries that ended while the receiver was disabled stay failed. Enabling a receiver that is not disabled changes nothing.',
  tags: ['receivers'],
  params: receiverParams,
  response: { status: 200, description: 'The enabled receiver.', schema: receiver },
  errors: [404],
});

export const receiverStateRoutes = [disableReceiver, enableReceiver] as const;
