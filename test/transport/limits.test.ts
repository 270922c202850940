// Channel limits (SPEC.md §2.6): every value is checked, and a name that is not a limit is refused.
import t from 'tap';
import { DEFAULT_LIMITS, resolveLimits } from '../../lib/transport/limits.js';

t.test('resolveLimits refuses a name that is not a limit, such as the retired maxMessageBytes', async (t) => {
  t.throws(() => resolveLimits({ maxMessageBytes: 1000 } as never), { code: 'INVALID_ARGUMENT', message: /unknown limit maxMessageBytes/ });
  t.throws(() => resolveLimits({ handshakeTimeoutMS: 5 } as never), { code: 'INVALID_ARGUMENT', message: /unknown limit handshakeTimeoutMS/ });
});

t.test('resolveLimits keeps send and receive message bounds apart', async (t) => {
  const limits = resolveLimits({ maxReceiveMessageBytes: 65_537 });
  t.equal(limits.maxReceiveMessageBytes, 65_537);
  t.equal(limits.maxSendMessageBytes, DEFAULT_LIMITS.maxSendMessageBytes, 'the send bound keeps its default');
  t.throws(() => resolveLimits({ maxReceiveMessageBytes: 0 }), { code: 'INVALID_ARGUMENT', message: /maxReceiveMessageBytes/ });
});
