// Two network namespaces for tests (see scripts/netns.ts), pending without root.
import { netnsUnavailable } from '../../scripts/netns';

export { createNetnsPair, netnsUnavailable } from '../../scripts/netns';
export type { NetnsNode, NetnsPair } from '../../scripts/netns';

/** Marks the test pending unless namespaces can be made. */
export function requiresNetns(ctx: Mocha.Context): boolean {
  const why = netnsUnavailable();
  if (why) {
    ctx.test!.title += ` (pending: ${why})`;
    ctx.skip();
  }
  return true;
}

