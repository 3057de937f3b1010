export { createLogger, type Logger, type LoggerOptions, silentLogger } from './logger.ts';
export { Counter, createMetricsRegistry, Gauge, Histogram, HotHistogram, Registry } from './metrics.ts';
