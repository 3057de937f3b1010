import { builtInDetector, type Detector } from '../detect.ts';

/**
 * Posture failure: a decision whose reasons include `device-posture-failed` or `posture-stale`
 * is flagged with the same name, and raises an alert keyed by the device (or the user
 * when the device is unknown).
 */
export function postureDetector(): Detector {
  return builtInDetector({
    name: 'posture',
    spec: { type: 'posture' },
    observe(event, report) {
      if (event.kind !== 'decision') return;
      const failed = event.reasons.includes('device-posture-failed');
      const stale = event.reasons.includes('posture-stale');
      if (!failed && !stale) return;
      if (failed) report.flag('device-posture-failed');
      if (stale) report.flag('posture-stale');
      const key = event.device ?? event.user ?? event.sourceIp;
      report.alert({
        key,
        severity: failed ? 'medium' : 'low',
        summary: `device ${event.device ?? '(unknown)'} of ${event.user ?? '(anonymous)'} ${failed ? 'failed its posture check' : 'has a stale posture report'}`,
        risk: [
          ...(failed ? (['device-posture-failed'] as const) : []),
          ...(stale ? (['posture-stale'] as const) : []),
        ],
        user: event.user,
        device: event.device,
        sourceIp: event.sourceIp,
        evidence: [event.requestId],
      });
    },
  });
}
