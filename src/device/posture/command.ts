import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';

/** How long one posture command may run before it is killed and its check is unknown. */
export const COMMAND_TIMEOUT_MS = 5000;
/** Most output (stdout and stderr each) read from one posture command. */
export const COMMAND_OUTPUT_LIMIT = 1024 * 1024;

/** Exit code reported for a command killed by the timeout, as timeout(1) does. */
const TIMED_OUT = 124;

/**
 * Runs `file` with `args` (no shell) and resolves with its exit code and output, or with
 * undefined when the program is not installed. Never rejects for a failing program: a
 * non-zero exit, a timeout or too much output is a result with a non-zero code.
 */
export type CommandRunner = (
  file: string,
  args: readonly string[],
) => Promise<{ code: number; stdout: string; stderr: string } | undefined>;

/** What a command said, or why it said nothing; `detail` is one line for evidence. */
export type CommandOutcome =
  | { kind: 'ran'; code: number; stdout: string; stderr: string }
  | { kind: 'missing' }
  | { kind: 'failed'; detail: string };

/**
 * The runner the agent uses: execFile without a shell, a 5 s timeout, output capped at
 * 1 MiB, and the C locale so that tools print the English text the parsers expect (ufw
 * and gsettings are translated). sbin folders are appended to PATH because nft and ufw
 * live there and a login shell of a non-root user often lacks them.
 */
export const runCommand: CommandRunner = (file, args) =>
  new Promise((resolve) => {
    execFile(
      file,
      [...args],
      {
        shell: false,
        timeout: COMMAND_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: COMMAND_OUTPUT_LIMIT,
        encoding: 'utf8',
        windowsHide: true,
        env: commandEnvironment(process.env),
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const code = (error as NodeJS.ErrnoException).code as unknown;
        if (code === 'ENOENT') {
          resolve(undefined);
          return;
        }
        if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
          resolve({ code: 1, stdout: '', stderr: `output over ${COMMAND_OUTPUT_LIMIT} bytes` });
          return;
        }
        if (error.killed) {
          resolve({ code: TIMED_OUT, stdout, stderr: `timed out after ${COMMAND_TIMEOUT_MS} ms` });
          return;
        }
        if (typeof code === 'number') {
          resolve({ code, stdout, stderr });
          return;
        }
        // EACCES and the like: the program is there but cannot be started.
        resolve({ code: 126, stdout: '', stderr: error.message });
      },
    );
  });

function commandEnvironment(environment: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const path = (environment['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) {
    if (!path.includes(extra)) path.push(extra);
  }
  return { ...environment, PATH: path.join(':'), LC_ALL: 'C', LANG: 'C', LANGUAGE: 'C' };
}

/**
 * Runs a command through an injected runner and folds every way it can go wrong into
 * an outcome, so that a posture check never throws because of a tool.
 */
export async function attempt(
  run: CommandRunner,
  file: string,
  args: readonly string[],
): Promise<CommandOutcome> {
  try {
    const result = await run(file, args);
    if (result === undefined) return { kind: 'missing' };
    return { kind: 'ran', code: result.code, stdout: result.stdout, stderr: result.stderr };
  } catch (error) {
    return { kind: 'failed', detail: oneLine(error instanceof Error ? error.message : String(error)) };
  }
}

/** `file args` as a person would type it, for evidence. */
export function commandLine(file: string, args: readonly string[]): string {
  return [file, ...args].join(' ');
}

/** Why a command that ran did not answer: its exit code and first line of stderr. */
export function describeFailure(outcome: { code: number; stderr: string; stdout: string }): string {
  const said = firstLine(outcome.stderr) || firstLine(outcome.stdout);
  return said === '' ? `exit ${outcome.code}` : `exit ${outcome.code}: ${said}`;
}

/** Most characters of untrusted text (file contents, tool output) put into evidence. */
const EVIDENCE_TEXT_LIMIT = 160;

/**
 * Untrusted text made fit for one evidence line: control characters replaced, runs of
 * white space collapsed, cut at a bound.
 */
export function oneLine(text: string, limit = EVIDENCE_TEXT_LIMIT): string {
  const flat = text
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((candidate) => candidate.trim() !== '');
  return line === undefined ? '' : oneLine(line);
}

/** Who commands run as: settings like the screen lock are per user, so evidence says whose. */
export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}
