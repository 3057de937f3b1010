export { type AgentOptions, type AgentRun, runAgentOnce, toPostureData } from './agent.ts';
export { DeviceBinding, type PeerDevice, type PeerRefusal } from './binding.ts';
export {
  type DeviceFile,
  defaultDeviceDir,
  type EnrolledDevice,
  type EnrollOptions,
  enrollDevice,
  loadDevice,
} from './client.ts';
export { mergePosture, type PostureData, postureDataSchema, type SourcedPosture } from './data.ts';
export { DEVICE_PATHS, deviceApiRoutes, deviceEndpoints, providerPath } from './http.ts';
export { DeviceInventory, type PolicyDevice } from './inventory.ts';
export {
  type CollectedPosture,
  type CollectOptions,
  type CommandRunner,
  collectPosture,
  type PostureCheck,
} from './posture/collect.ts';
export {
  mapProviderPayload,
  type PostureProvider,
  PROVIDER_SIGNATURE_HEADER,
  type ProviderFormat,
  signProviderPayload,
  verifyProviderSignature,
} from './providers.ts';
export {
  AUTHORIZATION_INTERVAL_S,
  type DeviceRecord,
  DeviceRegistry,
  type DeviceState,
  type IssuedDevice,
  normalizeUserCode,
} from './registry.ts';
export {
  POSTURE_REPORT_TYPE,
  RENEWAL_REQUEST_TYPE,
  signDeviceRequest,
  verifyDeviceRequest,
} from './report.ts';
