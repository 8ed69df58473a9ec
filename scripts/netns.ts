// Two network namespaces joined by a veth pair: two "nodes" on one machine.
// Addresses exist only inside the namespaces; nothing reaches the host's
// network. Names are unique per run so parallel runs do not collide. Used by
// the tests and the benchmarks.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hasCommand, isRoot } from './host';

export interface NetnsNode {
  ns: string;
  dev: string;
  address: string;
}

export interface NetnsPair {
  a: NetnsNode;
  b: NetnsNode;
  /** Takes the link down (or up again) on node a's side. */
  setLink(up: boolean): void;
  destroy(): void;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Why namespaces cannot be made here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (!isRoot) return 'needs root';
  if (!hasCommand('ip')) return 'needs ip (iproute2) installed';
  const probe = `bsyprobe${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

export function createNetnsPair(subnet = '10.231.0'): NetnsPair {
  const tag = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const a: NetnsNode = { ns: `bisync-${tag}-a`, dev: `bsy${tag}a`.slice(0, 15), address: `${subnet}.1` };
  const b: NetnsNode = { ns: `bisync-${tag}-b`, dev: `bsy${tag}b`.slice(0, 15), address: `${subnet}.2` };
  const pair: NetnsPair = {
    a,
    b,
    setLink(up) {
      ip('-n', a.ns, 'link', 'set', a.dev, up ? 'up' : 'down');
    },
    destroy() {
      // Deleting a namespace deletes its end of the veth, and with it the other end.
      spawnSync('ip', ['netns', 'del', a.ns]);
      spawnSync('ip', ['netns', 'del', b.ns]);
    },
  };
  try {
    ip('netns', 'add', a.ns);
    ip('netns', 'add', b.ns);
    ip('link', 'add', a.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns);
    for (const n of [a, b]) {
      ip('-n', n.ns, 'addr', 'add', `${n.address}/24`, 'dev', n.dev);
      ip('-n', n.ns, 'link', 'set', 'lo', 'up');
      ip('-n', n.ns, 'link', 'set', n.dev, 'up');
    }
  } catch (e) {
    pair.destroy();
    throw e;
  }
  return pair;
}
