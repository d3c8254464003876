// migstream/relay (Node): the relay between two QEMUs over sockets, its recordings and replay, and the
// pieces of the live protocol it decodes: main-channel commands, the return path, the preempt channel.
import '../node/install.js';

export { Relay, type RelayOptions, type RelayResult, type ConnectionSummary } from './relay.js';
export { replayRecording, type ReplayResult } from './replay.js';
export { decodeRecording } from './decode-recording.js';
export { readRecording, type RecordedConnection } from './recording.js';
export { parseUri, type SocketAddress } from './uri.js';
export { commandInfo, decodePackage, type CommandInfo, type PackageInfo, type PackagedCommand } from '../stream/commands.js';
export { encodeCommand, encodePackaged, encodeReturnPath } from '../stream/command-encoder.js';
export { ReturnPathDecoder, type ReturnPathEvent } from '../stream/return-path.js';
export { PreemptDecoder } from '../stream/preempt.js';
