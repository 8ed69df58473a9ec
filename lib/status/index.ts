// DRBD status: getStatus() and watch(), and the parsers behind them.
export * from './types';
export { getStatus, fromNetlink, fromEvents2, minorNames } from './status';
export type { StatusOptions } from './status';
export { watch } from './watch';
export type { WatchEvent, WatchOptions } from './watch';
export { parseProcDrbd, resourcesFromProc } from './proc-drbd';
export { parseEvents2, parseEvents2Line, EventsState } from './events2';
export { resolveFamily, listFamilies, GenlSocket, FamilyNotFoundError } from './genl';
export { resolveDrbdFamily } from './drbd-genl';
