import { bit, UNKNOWN } from '../reasons.ts';
import type { ConditionSpec } from '../schema.ts';
import { globToRegExp } from './glob.ts';
import { type Leaf, memberOf } from './leaf.ts';

const DENIED = bit('workload-denied');
const MISSING = DENIED | UNKNOWN;
const NO_CERT = bit('client-cert-missing');

/** `spiffe_id: { equals | glob }`; in a glob `*` is one path segment, `**` any number. */
export function spiffeId(spec: NonNullable<ConditionSpec['spiffe_id']>): Leaf {
  if (spec.equals !== undefined) {
    const members = memberOf(Array.isArray(spec.equals) ? spec.equals : [spec.equals]);
    return {
      reasons: MISSING,
      evaluate: (input) => {
        const workload = input.workload;
        if (workload === undefined) return MISSING;
        return members.has(workload.spiffeId) ? 0 : DENIED;
      },
    };
  }
  const globs = spec.glob === undefined ? [] : Array.isArray(spec.glob) ? spec.glob : [spec.glob];
  const patterns = globs.map(globToRegExp);
  return {
    reasons: MISSING,
    evaluate: (input) => {
      const workload = input.workload;
      if (workload === undefined) return MISSING;
      for (let index = 0; index < patterns.length; index++) {
        if ((patterns[index] as RegExp).test(workload.spiffeId)) return 0;
      }
      return DENIED;
    },
  };
}

/** A client certificate is a fact of the connection: absent means false, not unknown. */
export function clientCertificate(): Leaf {
  return { reasons: NO_CERT, evaluate: (input) => (input.clientCertificate === true ? 0 : NO_CERT) };
}
