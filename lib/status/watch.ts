// watch(): an async iterator of status changes, one event per resource that
// changed. Over netlink it wakes on the "events" multicast group and re-reads
// the state; without netlink it follows `drbdsetup events2` or polls /proc/drbd.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { DrbdCmd, decodeDrbdMessage, resolveDrbdFamily } from './drbd-genl';
import { EventsState, parseEvents2Line } from './events2';
import { FamilyNotFoundError, GenlSocket } from './genl';
import { readKernelLog } from './kernel-log';
import { fromNetlink, getStatus, markSplitBrain, moduleApi } from './status';
import type { ResourceStatus, StatusSource } from './types';

export interface WatchEvent {
  /** "exists" for the state at start, then "change" or "remove". */
  type: 'exists' | 'change' | 'remove';
  time: string;
  source: StatusSource;
  resource: ResourceStatus | { name: string };
}

export interface WatchOptions {
  resource?: string;
  source?: StatusSource | 'auto';
  /** Polling period for /proc/drbd (ms). */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Remembers the last document per resource and yields what changed. */
class Differ {
  private last = new Map<string, string>();
  constructor(private readonly source: StatusSource, private readonly only?: string) {}

  *diff(resources: ResourceStatus[], first: boolean): Generator<WatchEvent> {
    const time = new Date().toISOString();
    const seen = new Set<string>();
    for (const r of resources) {
      if (this.only !== undefined && r.name !== this.only) continue;
      seen.add(r.name);
      const json = JSON.stringify(r);
      if (this.last.get(r.name) === json) continue;
      this.last.set(r.name, json);
      yield { type: first ? 'exists' : 'change', time, source: this.source, resource: r };
    }
    for (const name of [...this.last.keys()]) {
      if (seen.has(name)) continue;
      this.last.delete(name);
      yield { type: 'remove', time, source: this.source, resource: { name } };
    }
  }
}

export async function* watch(opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
  const source = opts.source ?? 'auto';
  if (source === 'netlink' || source === 'auto') {
    let sock: GenlSocket | undefined;
    try {
      const fam = await resolveDrbdFamily();
      if (fam.eventsGroup === undefined) throw new Error('the drbd netlink family has no "events" multicast group');
      sock = await GenlSocket.open([fam.eventsGroup]);
    } catch (e) {
      if (source === 'netlink' || e instanceof FamilyNotFoundError) throw e;
    }
    if (sock) {
      yield* watchNetlink(sock, opts);
      return;
    }
  }
  const status = source === 'auto' ? await getStatus({ kernelLog: [] }) : undefined;
  if (source === 'events2' || status?.source === 'events2') yield* watchEvents2(opts);
  else yield* watchPolling(opts);
}

async function* watchNetlink(sock: GenlSocket, opts: WatchOptions): AsyncGenerator<WatchEvent> {
  const differ = new Differ('netlink', opts.resource);
  const helperSplitBrain = new Set<string>();
  const read = async (): Promise<ResourceStatus[]> => {
    const st = await fromNetlink();
    markSplitBrain(st.resources, readKernelLog() ?? []);
    for (const r of st.resources) {
      if (r.connection !== 'StandAlone') helperSplitBrain.delete(r.name);
      else if (helperSplitBrain.has(r.name) && !r.splitBrain) Object.assign(r, { splitBrain: true, splitBrainEvidence: 'helper' });
    }
    return st.resources;
  };
  try {
    yield* differ.diff(await read(), true);
    while (!opts.signal?.aborted) {
      let msgs;
      try {
        msgs = await sock.receive(500);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOBUFS') throw e;
        msgs = [{ cmd: 0 }]; // the kernel dropped events: re-read everything
      }
      if (!msgs.length) continue;
      // Let a burst settle (a state change notifies every object) before reading once.
      for (let more = await sock.receive(50); more.length; more = await sock.receive(50)) msgs.push(...more);
      for (const m of msgs) {
        if (!('payload' in m)) continue;
        try {
          const d = decodeDrbdMessage(m);
          const helper = m.cmd === DrbdCmd.HELPER ? d.structs.HELPER?.helper_name : m.cmd === DrbdCmd.EVENT ? d.structs.STATE_INFO?.helper : undefined;
          const name = d.structs.CFG_CONTEXT?.ctx_resource_name;
          if (typeof helper === 'string' && /^(initial-)?split-brain$/.test(helper) && typeof name === 'string') helperSplitBrain.add(name);
        } catch {
          // An undecodable notification still triggers the re-read below.
        }
      }
      yield* differ.diff(await read(), false);
    }
  } finally {
    await sock.close();
  }
}

async function* watchPolling(opts: WatchOptions): AsyncGenerator<WatchEvent> {
  const differ = new Differ('proc', opts.resource);
  let first = true;
  while (!opts.signal?.aborted) {
    const st = await getStatus({ source: 'proc' });
    yield* differ.diff(st.resources, first);
    first = false;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}

async function* watchEvents2(opts: WatchOptions): AsyncGenerator<WatchEvent> {
  const differ = new Differ('events2', opts.resource);
  const child = spawn('drbdsetup', ['events2', '--statistics'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const onAbort = (): void => void child.kill();
  opts.signal?.addEventListener('abort', onAbort);
  const state = new EventsState(moduleApi());
  let started = false;
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.trim() === 'exists -') {
        started = true;
        yield* differ.diff(state.resources(), true);
        continue;
      }
      const ev = parseEvents2Line(line);
      if (!ev) continue;
      state.apply(ev);
      if (started) yield* differ.diff(state.resources(), false);
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    child.kill();
  }
}
