// Channel limits (SPEC.md §2.6): every value is checked, and a name that is not a limit is refused.
import t from 'tap';
import * as limits from '../../lib/transport/limits.js';
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

t.test('the fixed sizes of limits.ts agree with the wire format they bound', async (t) => {
  // Handshake frame bodies with empty payloads (SPEC.md §2.3): xxpsk3 msg1 || mac1, msg2, msg3; nnpsk0 msg1, msg2.
  const xxMessage1 = 32 + 16;
  const handshakeFrames = [xxMessage1 + limits.MAC1_BYTES, 96, 64, 48, 48];
  t.equal(limits.MAC1_BYTES + xxMessage1, 64, 'frame 1 of xxpsk3 is 64 bytes');
  t.ok(handshakeFrames.every((bytes) => bytes <= limits.MAX_UNAUTHENTICATED_FRAME_BYTES), 'every handshake frame fits the unauthenticated bound');
  t.ok(limits.REJECTION_FRAME_BYTES < Math.min(...handshakeFrames, 16 + 1), 'a rejection is shorter than any Noise message the server sends, READY included');
  t.equal(limits.MAX_PREAMBLE_BYTES, 71);
  t.equal(limits.MAX_RECORD_BODY_BYTES, 65_518);
  t.equal(limits.FULL_RECORD_WIRE_BYTES, limits.FRAME_HEADER_BYTES + limits.MAX_FRAME_BYTES, 'a full record fills a frame');
  t.equal(limits.BATCH_WIRE_BYTES, limits.RECORDS_PER_WRITE * limits.FULL_RECORD_WIRE_BYTES, 'the batch pool holds one write of full records');
  t.ok(limits.POOLED_RECORD_FROM_BYTES < limits.FULL_RECORD_WIRE_BYTES && limits.POOLED_BATCH_FROM_BYTES < limits.BATCH_WIRE_BYTES, 'each pool serves requests below its buffer size');
  t.equal(limits.POOLED_RECORD_FROM_BYTES, Math.floor(limits.FULL_RECORD_WIRE_BYTES / 4), 'the record pool serves from a quarter of a full record');
  t.equal(limits.POOLED_BATCH_FROM_BYTES, Math.floor(limits.BATCH_WIRE_BYTES / 4), 'the batch pool serves from a quarter of a batch');
  t.ok(limits.POOLED_BATCH_FROM_BYTES > limits.FULL_RECORD_WIRE_BYTES, 'the two pools serve apart: a full record never takes a batch buffer');
  t.ok(limits.YIELD_AFTER_BYTES < limits.SEND_BUFFER_BYTES, 'a sender yields before its socket buffer is full');
  t.ok(limits.RETRY_BASE_DELAY_MS < limits.RETRY_MAX_DELAY_MS && limits.RETRY_MAX_DELAY_MS < limits.DEFAULT_RETRY_FOR_MS);
  t.ok(limits.REFUSAL_LINGER_MS < DEFAULT_LIMITS.firstFlightTimeoutMs, 'a refused socket lingers less than a stranger may idle');
});
