import pino, { type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** `auto` is pretty on a terminal and JSON otherwise. */
  format?: 'auto' | 'json' | 'pretty';
  /** Where JSON lines go; stdout by default (tests pass a stream). */
  destination?: NodeJS.WritableStream;
}

/**
 * Paths redacted in every log line: a credential must never reach a log even when a
 * whole request or config object is logged by mistake.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  '*.token',
  '*.secret',
  '*.password',
  '*.client_secret',
  '*.refresh_token',
  '*.access_token',
  '*.id_token',
];

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? 'auto';
  const pretty =
    format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true && !options.destination);
  const base = {
    level: options.level ?? 'info',
    base: { service: 'vigil' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss' } },
    });
  }
  return options.destination ? pino(base, options.destination) : pino(base);
}

/** A logger that drops everything, for tests and library use without a sink. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
