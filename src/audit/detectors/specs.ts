import type { Detector, DetectorSpec } from '../detect.ts';
import { afterHoursDetector } from './after-hours.ts';
import { bruteForceDetector } from './brute-force.ts';
import { lateralMovementDetector } from './lateral-movement.ts';
import { newDeviceDetector } from './new-device.ts';
import { postureDetector } from './posture.ts';
import { tokenReplayDetector } from './token-replay.ts';

/**
 * A built-in detector again from its spec: the audit writer's thread builds its own
 * detectors from the specs of the server's, since functions cannot cross threads.
 */
export function detectorFromSpec(spec: DetectorSpec): Detector {
  switch (spec.type) {
    case 'after-hours':
      return afterHoursDetector(spec.options);
    case 'brute-force':
      return bruteForceDetector(spec.options);
    case 'lateral-movement':
      return lateralMovementDetector(spec.options);
    case 'new-device':
      return newDeviceDetector(spec.options);
    case 'posture':
      return postureDetector();
    case 'token-replay':
      return tokenReplayDetector(spec.options);
  }
}
