export { routeSpecs } from './policies.ts';
export { type RunningServer, type StartServerOptions, startServer } from './server.ts';
export { VERSION } from './version.ts';
