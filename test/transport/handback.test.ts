// The hand-back request of an online merge over the real TLS-PSK transport: an
// agent started without a resource refuses it; one with a resource accepts it,
// gets the csums-alg, and answers with how long it served and what it will run.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { HandbackRequest, ResyncAgent, connectPeer } from '../../lib/transport';
import { MemoryEndpoint } from './fixtures/memory-endpoint';

const PSK = randomBytes(32);

async function withAgent(onHandback: ((req: HandbackRequest) => { resource: string; servingMs: number; commands: string[] }) | undefined,
  body: (port: number) => Promise<void>): Promise<void> {
  const agent = new ResyncAgent({ endpoint: new MemoryEndpoint(1 << 20), psk: PSK, listen: { host: '127.0.0.1', port: 0 }, onHandback });
  const { port } = await agent.listen();
  try {
    await body(port);
  } finally {
    await agent.close();
  }
}

describe('transport: hand-back request (online merge)', function () {
  it('an agent without a resource refuses it with ERR_REFUSED, naming --resource', async () => {
    await withAgent(undefined, async (port) => {
      const peer = await connectPeer({ host: '127.0.0.1', port, psk: PSK });
      try {
        await assert.rejects(peer.handback({ csumsAlg: 'md5' }), (e: Error & { code?: string }) =>
          e.code === 'ERR_REFUSED' && /start `drbd-bisync serve` with --resource/.test(e.message));
      } finally {
        await peer.close();
      }
    });
  });

  it('an agent with a resource gets the csums-alg and answers; a bad csums-alg is a protocol error', async () => {
    const seen: HandbackRequest[] = [];
    await withAgent((req) => {
      seen.push(req);
      return { resource: 'r0', servingMs: 1234, commands: ['drbdadm attach r0'] };
    }, async (port) => {
      const peer = await connectPeer({ host: '127.0.0.1', port, psk: PSK });
      try {
        assert.deepEqual(await peer.handback({ csumsAlg: 'sha1' }), { resource: 'r0', servingMs: 1234, commands: ['drbdadm attach r0'] });
        await assert.rejects(peer.handback({ csumsAlg: 'md5; reboot' }), /bad hand-back request/);
      } finally {
        await peer.close().catch(() => undefined);
      }
    });
    assert.deepEqual(seen, [{ csumsAlg: 'sha1' }]);
  });
});
