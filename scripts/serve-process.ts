// `drbd-bisync serve` in a child process, optionally inside a network
// namespace: resolves once it listens, with the port it printed. Used by the
// demo, the benchmarks and the tests.
import { ChildProcess, spawn } from 'node:child_process';
import * as readline from 'node:readline';

export interface ServeProcess {
  proc: ChildProcess;
  port: number;
  /** The agent's exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

export interface ServeOptions {
  device: string;
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  pskFile: string;
  once?: boolean;
  /** Run inside this network namespace (ip netns exec). */
  netns?: string;
}

export async function startServe(cli: string, o: ServeOptions): Promise<ServeProcess> {
  const args = [process.execPath, cli, 'serve', '--device', o.device, '--listen', o.listen, '--psk-file', o.pskFile, '--json', ...(o.once ? ['--once'] : [])];
  const argv = o.netns ? ['ip', 'netns', 'exec', o.netns, ...args] : args;
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  for await (const line of readline.createInterface({ input: proc.stdout! })) {
    const ev = JSON.parse(line) as { event: string; port?: number };
    if (ev.event === 'listening') return { proc, port: ev.port!, exited };
  }
  throw new Error(`serve exited before listening: ${stderr.trim()}`);
}
