// Moving a merge across the network: the agent (`serve`), its client, and the key.
export type { BlockHashes, Endpoint, EndpointInfo } from './endpoint';
export { ResyncAgent } from './agent';
export type { ResyncAgentOptions, SessionEnd, SessionInfo } from './agent';
export { RemoteEndpoint, connectPeer } from './remote-endpoint';
export type { ConnectPeerOptions } from './remote-endpoint';
export type { TransferStats } from './connection';
export type { Compression, HandbackAccepted, HandbackRequest } from './protocol';
export { DEFAULT_IDENTITY, MIN_PSK_BYTES, generatePsk, parsePsk, readPskFile, writePskFile } from './psk';
export { TokenBucket } from './rate-limit';
export { transferExtents } from './transfer';
export type { TransferOptions } from './transfer';
